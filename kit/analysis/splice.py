"""A sparse dictionary on a model: collect an MLP's inputs and outputs, and splice a dictionary in.

:func:`mlp_io` traces prompts once and keeps, for every real token of one layer, the MLP's input
(``mlp_normalized``: the residual stream after the MLP's norm, before its gain; the MLP is a fixed function
of it), its neurons (``mlp_post``) and its output (``mlp_out``), one column per token: the data of an SAE
(``mlp_post``) and of a transcoder (``mlp_normalized`` -> ``mlp_out``) on the same tokens.

:func:`splice` runs the model with the dictionary in place of what it stands for (an SAE's reconstruction
of ``mlp_post``, a transcoder's prediction of ``mlp_out``) and reports the next-token loss and the KL
divergence from the clean model, against ablating the MLP's output (its mean, or zero): how much of the
MLP's work the dictionary keeps (``recovered``, 1 = all of it, 0 = no better than the ablation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .._validate import check_int, check_layer, check_model
from ..interventions import Edit
from .dictionary import Dictionary
from .features import MLPActivations

if TYPE_CHECKING:  # pragma: no cover
    from ..models import Model

__all__ = ["MLPInOut", "mlp_io", "SpliceResult", "splice"]


@dataclass(frozen=True, repr=False)
class MLPInOut:
    """One MLP layer over the real tokens of many prompts: ``inputs[d_model, n_tokens]`` (``mlp_normalized``),
    ``outputs[d_model, n_tokens]`` (``mlp_out``) and ``col`` (:class:`~kit.analysis.MLPActivations`: the
    neurons ``col.acts[d_mlp, n_tokens]`` and each token's prompt, position and text)."""

    inputs: torch.Tensor
    outputs: torch.Tensor
    col: MLPActivations

    @property
    def hidden(self) -> torch.Tensor:
        """``[d_mlp, n_tokens]``: the neurons, ``col.acts``."""
        return self.col.acts

    @property
    def layer(self) -> int:
        return self.col.layer

    @property
    def n_tokens(self) -> int:
        return self.inputs.shape[1]

    def __repr__(self) -> str:
        return (f"MLPInOut(layer={self.layer}, inputs [{self.inputs.shape[0]}, n], hidden [{self.hidden.shape[0]}, n], "
                f"outputs [{self.outputs.shape[0]}, n], n_tokens={self.n_tokens})")


def _prompt_list(prompts) -> list[str]:
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise ValueError("no prompts given")
    return prompts


def mlp_io(model: "Model", prompts: Sequence[str], layer: int, batch_size: int = 64) -> MLPInOut:
    """Trace ``prompts`` in batches and keep the MLP's input, neurons and output of ``layer`` at every real token."""
    check_model(model, "mlp_io")
    layer = check_layer(model, layer)
    check_int(batch_size, "batch_size", low=1)
    prompts = _prompt_list(prompts)
    names = ["mlp_normalized", "mlp_post", "mlp_out"]
    got: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    ids, which, pos, texts = [], [], [], []
    for s in range(0, len(prompts), batch_size):
        tr = model.trace(prompts[s:s + batch_size], capture=names, layers=[layer])
        mask = tr.mask  # [batch, pos]
        for n in names:
            got[n].append(tr[n, layer][mask].float().cpu())  # [tokens, d]
        ids.append(tr.input_ids[mask].cpu())
        b, p = mask.nonzero(as_tuple=True)
        which.append(b.cpu() + s)
        pos.append(p.cpu())
        texts.extend(tr.tokens)
    cat = {n: torch.cat(v).T.contiguous() for n, v in got.items()}
    col = MLPActivations(cat["mlp_post"], torch.cat(ids), torch.cat(which), torch.cat(pos), texts,
                         layer % model.n_layers)
    return MLPInOut(cat["mlp_normalized"], cat["mlp_out"], col)


@dataclass(frozen=True, repr=False)
class SpliceResult:
    """Next-token loss (nats, mean over the ``n_predictions`` predicted real tokens) of the clean model, with the
    dictionary spliced in, and with the MLP's output ablated (``ablation``: ``"mean"`` or ``"zero"``); ``kl`` and
    ``ablated_kl``: mean KL(clean ‖ ...) of the next-token distributions at the same positions."""

    clean_loss: float
    spliced_loss: float
    ablated_loss: float
    kl: float
    ablated_kl: float
    ablation: str
    kind: str
    layer: int
    n_predictions: int

    @property
    def recovered(self) -> float:
        """``(ablated − spliced) / (ablated − clean)``: the share of the MLP's loss reduction the dictionary keeps."""
        gap = self.ablated_loss - self.clean_loss
        return (self.ablated_loss - self.spliced_loss) / gap if gap != 0 else float("nan")

    def __repr__(self) -> str:
        return (f"SpliceResult({self.kind} at MLP {self.layer}: loss clean {self.clean_loss:.4f}, spliced "
                f"{self.spliced_loss:.4f}, {self.ablation}-ablated {self.ablated_loss:.4f} -> recovered "
                f"{self.recovered:.1%}; KL {self.kl:.4f} (ablated {self.ablated_kl:.4f}); "
                f"{self.n_predictions} predictions)")


def _next_token_terms(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor):
    """Log-probs ``[m, vocab]`` at positions whose next token is real, and the loss there ``[m]``."""
    keep = mask[:, :-1] & mask[:, 1:]  # [batch, pos - 1]
    lp = logits[:, :-1].float().log_softmax(-1)[keep]  # [m, vocab]
    return lp, -lp.gather(1, ids[:, 1:][keep][:, None]).squeeze(1)


def _kl_sum(base: torch.Tensor, other: torch.Tensor) -> float:
    return float((base.exp() * (base - other)).sum())


def splice(model: "Model", prompts: Sequence[str], layer: int, dictionary: Dictionary, *, ablation: str = "mean",
           batch_size: int = 32) -> SpliceResult:
    """Run ``prompts`` with ``dictionary`` in place of what it reconstructs at MLP ``layer`` and measure the loss.

    An SAE (``d_out = d_mlp``) replaces the neurons ``mlp_post`` by ``decode(encode(mlp_post))``; a transcoder
    (``d_in = d_out = d_model``) replaces the output ``mlp_out`` by ``decode(encode(mlp_normalized))``. The
    baseline replaces ``mlp_out`` by its mean over the prompts' real tokens (``ablation="mean"``) or by zero.
    """
    check_model(model, "splice")
    layer = check_layer(model, layer)
    check_int(batch_size, "batch_size", low=1)
    prompts = _prompt_list(prompts)
    if not isinstance(dictionary, Dictionary):
        raise TypeError(f"dictionary must be a kit.analysis.Dictionary (from train_sae or train_transcoder); got "
                        f"{type(dictionary).__name__}")
    if ablation not in ("mean", "zero"):
        raise ValueError(f"ablation must be 'mean' or 'zero'; got {ablation!r}")
    if dictionary.kind == "sae":
        site, source = "mlp_post", "mlp_post"
        if dictionary.d_in != model.d_mlp:
            raise ValueError(f"an SAE spliced into the MLP must be trained on mlp_post [d_mlp={model.d_mlp}, n]; this "
                             f"one has d={dictionary.d_in}")
    else:
        site, source = "mlp_out", "mlp_normalized"
        if (dictionary.d_in, dictionary.d_out) != (model.d_model, model.d_model):
            raise ValueError(f"a transcoder spliced into the MLP must map mlp_normalized [d_model={model.d_model}] to "
                             f"mlp_out [d_model]; this one maps {dictionary.d_in} -> {dictionary.d_out}")
    batches = [prompts[s:s + batch_size] for s in range(0, len(prompts), batch_size)]
    mean_out = None
    if ablation == "mean":
        total, count = 0.0, 0
        for b in batches:
            tr = model.trace(b, capture=["mlp_out"], layers=[layer])
            total = total + tr["mlp_out", layer][tr.mask].float().sum(0)
            count += int(tr.mask.sum())
        mean_out = total / count  # [d_model]
    sums = {"clean": 0.0, "spliced": 0.0, "ablated": 0.0, "kl": 0.0, "ablated_kl": 0.0}
    m_total = 0
    for b in batches:
        clean = model.trace(b, capture=list(dict.fromkeys([source, "mlp_out"])), layers=[layer])
        x = clean[source, layer].float()  # [batch, pos, d_in]
        new = dictionary(x.reshape(-1, x.shape[-1]).T).T.reshape(*x.shape[:2], dictionary.d_out)
        spliced = model.trace(b, capture=[], interventions=[Edit(site, layer, lambda a, v=new: v.to(a.dtype))])
        fill = (mean_out if mean_out is not None else torch.zeros(model.d_model)).to(model.device)
        ablated = model.trace(b, capture=[], interventions=[
            Edit("mlp_out", layer, lambda a, f=fill: f.to(a.dtype).expand_as(a).clone())])
        ids, mask = clean.input_ids, clean.mask
        base, loss = _next_token_terms(clean.logits, ids, mask)
        lp_s, loss_s = _next_token_terms(spliced.logits, ids, mask)
        lp_a, loss_a = _next_token_terms(ablated.logits, ids, mask)
        sums["clean"] += float(loss.sum())
        sums["spliced"] += float(loss_s.sum())
        sums["ablated"] += float(loss_a.sum())
        sums["kl"] += _kl_sum(base, lp_s)
        sums["ablated_kl"] += _kl_sum(base, lp_a)
        m_total += loss.shape[0]
    if m_total == 0:
        raise ValueError("the prompts have no next token to predict: give prompts of two tokens or more")
    return SpliceResult(sums["clean"] / m_total, sums["spliced"] / m_total, sums["ablated"] / m_total,
                        sums["kl"] / m_total, sums["ablated_kl"] / m_total, ablation, dictionary.kind, layer, m_total)
