"""Measurements from the interpretability literature, on any traced model.

Shapes follow the glossary in :mod:`kit.names`: scores of heads are ``[layer, head]``, grids of
patching and causal tracing ``[layer, pos]``.
"""

from __future__ import annotations

from ._common import token_id
from .ablation import AblationComparison, BackupResult, ablate_heads, backup_heads, compare_ablations
from .attribution import Attribution, direct_logit_attribution
from .attribution_patching import Agreement, AttributionPatching, agreement, attribution_patching
from .circuits import OVCircuit, QKCircuit, composition_baseline, ov_circuit, qk_circuit
from .dictionary import Dictionary, SparseDictionary, train_dictionary, train_sae, train_transcoder
from .factual import (
    FinalBlockMeasures, RecallStory, RecallSummary, contrast_attribution, final_block_measures, recall_story,
    recall_summary,
)
from .features import (
    MLPActivations, Purity, PurityComparison, chance_purity, compare_purity, decode_direction, diff_means,
    direction_logits, label_purity, mlp_activations, random_sparse_like,
)
from .head_scores import (
    composition_scores, copying_scores, induction_scores, prev_token_scores, repeated_tokens,
)
from .logit_lens import LogitLens, logit_lens
from .neurons import NeuronDecoding, clamp_effect, decode_neurons, top_activating
from .patching import (
    CausalTrace, PatchingResult, activation_patching, attention_knockout, causal_trace, causal_traces,
    subject_positions,
)
from .path_patching import PathPatchingResult, path_patching
from .snmf import Decomposition, nmf, snmf
from .splice import MLPInOut, SpliceResult, mlp_io, splice
from .superposition import ToyModels, train_toy_models
from .steering import SteeringResult, compare_steering, concept_ids, steer_at_matched_kl, steering_table
from .steering import steer as steer_mlp
from .voids import active_layers, skip_voids

__all__ = [
    "prev_token_scores", "induction_scores", "copying_scores", "composition_scores", "repeated_tokens",
    "logit_lens", "LogitLens",
    "direct_logit_attribution", "Attribution", "contrast_attribution",
    "activation_patching", "PatchingResult", "causal_trace", "causal_traces", "CausalTrace", "attention_knockout",
    "subject_positions",
    "decode_neurons", "NeuronDecoding", "top_activating", "clamp_effect",
    "active_layers", "skip_voids",
    "recall_summary", "RecallSummary", "recall_story", "RecallStory", "final_block_measures", "FinalBlockMeasures",
    "snmf", "nmf", "Decomposition", "mlp_activations", "MLPActivations", "diff_means", "label_purity", "Purity",
    "chance_purity", "compare_purity", "PurityComparison", "random_sparse_like", "direction_logits",
    "decode_direction", "steer_mlp", "steer_at_matched_kl", "compare_steering", "steering_table", "SteeringResult",
    "concept_ids", "token_id",
    "path_patching", "PathPatchingResult", "attribution_patching", "AttributionPatching", "agreement", "Agreement",
    "qk_circuit", "QKCircuit", "ov_circuit", "OVCircuit", "composition_baseline",
    "compare_ablations", "AblationComparison", "ablate_heads", "backup_heads", "BackupResult",
    "train_toy_models", "ToyModels", "train_dictionary", "SparseDictionary",
    "Dictionary", "train_sae", "train_transcoder", "mlp_io", "MLPInOut", "splice", "SpliceResult",
]
