"""The same figures on CPU and GPU, within stated tolerances (skipped without CUDA).

Both shipped models are loaded twice, on the CPU and on CUDA, in float32 with TF32 matmuls turned
off (so the GPU computes in full float32; what remains are summation-order differences and the GPU's
fused attention kernels). Tolerances, absolute:

- trace activations (residual stream, attention and MLP outputs, per-head outputs, neuron
  activations): 1e-4 times the activation's largest magnitude; attention patterns: 1e-5;
  logits: 1e-3;
- head scores (previous-token, induction): 1e-4; direct logit attribution: 1e-3 per part;
- causal tracing (restored probabilities): 1e-4; logit lens: the same top-1 token everywhere.
"""

from __future__ import annotations

import pytest
import torch

import kit
import kit.analysis as A

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

PROMPTS = ["The capital of Fusuvaria is"]


@pytest.fixture(scope="module", autouse=True)
def full_float32():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.fixture(scope="module", params=["facts-4l", "induction-2l"])
def pair(request):
    return kit.load(request.param, device="cpu"), kit.load(request.param, device="cuda")


def _close(cpu: torch.Tensor, gpu: torch.Tensor, atol: float, what: str) -> None:
    gap = float((cpu.float() - gpu.float().cpu()).abs().max())
    assert gap <= atol, f"{what}: CPU and CUDA differ by {gap:.3g} (tolerance {atol:.3g})"


def _prompt(model) -> str:
    return PROMPTS[0] if model.name == "facts-4l" else "ba be bi ba be bi"


def test_trace_outputs_agree(pair):
    cpu, gpu = pair
    prompt = _prompt(cpu)
    a, b = cpu.trace(prompt), gpu.trace(prompt)
    assert a.tokens == b.tokens
    _close(a.logits, b.logits, 1e-3, "logits")
    for name in a.names:
        for layer in a.layers:
            x = a[name, layer]
            atol = 1e-5 if name == "pattern" else 1e-4 * max(1.0, float(x.abs().max()))
            _close(x, b[name, layer], atol, f"{name} layer {layer}")


def test_head_scores_agree(pair):
    cpu, gpu = pair
    _close(A.prev_token_scores(cpu), A.prev_token_scores(gpu), 1e-4, "previous-token scores")
    _close(A.induction_scores(cpu), A.induction_scores(gpu), 1e-4, "induction scores")


def test_attribution_and_logit_lens_agree(pair):
    cpu, gpu = pair
    prompt = _prompt(cpu)
    a, b = cpu.trace(prompt), gpu.trace(prompt)
    answer = int(a.logits[0, -1].argmax())
    da, db = A.direct_logit_attribution(a, answer), A.direct_logit_attribution(b, answer)
    for part in ("embed", "heads", "mlps", "total"):
        _close(getattr(da, part), getattr(db, part), 1e-3, f"attribution {part}")
    assert torch.equal(A.logit_lens(a, k=1).top_ids, A.logit_lens(b, k=1).top_ids)


def test_causal_tracing_agrees(pair):
    cpu, gpu = pair
    if cpu.name != "facts-4l":
        pytest.skip("causal tracing needs a subject: facts-4l")
    a = A.causal_trace(cpu, PROMPTS[0], "Fusuvaria", kind="mlp", samples=3)
    b = A.causal_trace(gpu, PROMPTS[0], "Fusuvaria", kind="mlp", samples=3)
    _close(a.scores, b.scores, 1e-4, "causal trace")
    assert abs(a.clean - b.clean) <= 1e-4 and abs(a.corrupted - b.corrupted) <= 1e-4
