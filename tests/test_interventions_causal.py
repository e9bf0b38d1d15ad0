"""No intervention lets a position see the future: logits at ``i`` never depend on tokens after ``i``."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import kit

ATOL = 1e-5
VOCAB_LO = 1  # token 0 is the pad/eos token of the tiny models


def test_knockout_of_every_visible_key_attends_to_nothing(tiny_models):
    """``Knockout(0, query=None, key=0)`` leaves position 0 nothing to see: zero pattern, zero head output."""
    model = tiny_models["gpt2"]
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    later = ids.clone()
    later[0, 1:] = torch.tensor([40, 41, 42, 43, 44])
    ko = [kit.Knockout(layer=0, query=None, key=0)]
    tr = model.trace(ids, capture=["pattern", "z"], interventions=ko)
    tr_later = model.trace(later, capture=["pattern", "z"], interventions=ko)
    p = tr["pattern", 0][0]  # [head, query, key]
    assert p[:, 0].abs().max() == 0  # query 0 attends to nothing
    assert tr["z", 0][0, 0].abs().max() == 0  # so every head's output there is zero
    assert p[:, 1:, 0].abs().max() == 0  # key 0 is blocked for the other queries too ...
    torch.testing.assert_close(p[:, 1:].sum(-1), torch.ones(model.n_heads, 5), atol=1e-5, rtol=0)  # ... who see the rest
    assert p.triu(1).abs().max() == 0
    torch.testing.assert_close(tr_later.logits[0, 0], tr.logits[0, 0], atol=0, rtol=0)
    # the knockout did change position 0 (its attention output is gone), so the test can tell
    assert not torch.allclose(model.trace(ids, capture=[]).logits[0, 0], tr.logits[0, 0], atol=1e-4)


def _positions(draw, n: int):
    kind = draw(st.sampled_from(["all", "first", "int", "list", "slice"]))
    if kind == "all":
        return None
    if kind == "first":  # the first token: knocking it out leaves query 0 nothing to see
        return 0
    if kind == "int":
        return draw(st.integers(-n, n - 1))
    if kind == "list":
        return draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    start = draw(st.integers(0, n - 1))
    return slice(start, draw(st.integers(start + 1, n)))


def _intervention(draw, model, n: int, source, reference):
    kind = draw(st.sampled_from(["ablate_zero", "ablate_mean", "patch", "clamp", "steer", "knockout", "knockout",
                                 "edit"]))
    layer = draw(st.integers(0, model.n_layers - 1))
    heads = draw(st.lists(st.integers(0, model.n_heads - 1), min_size=1, max_size=model.n_heads, unique=True))
    if kind == "ablate_zero":
        return kit.Ablate(layer, heads, pos=_positions(draw, n))
    if kind == "ablate_mean":  # a fixed reference: the batch's own mean is documented as not causal
        return kit.Ablate(layer, heads, how="mean", reference=reference, pos=_positions(draw, n))
    if kind == "patch":
        name = draw(st.sampled_from(["resid_pre", "resid_post", "attn_out", "mlp_out", "mlp_post", "z",
                                     "head_out", "pattern"]))
        head = heads if name in ("z", "head_out", "pattern") and draw(st.booleans()) else None
        return kit.Patch(name, layer, source, pos=_positions(draw, n), head=head)
    if kind == "clamp":
        neurons = draw(st.lists(st.integers(0, model.d_mlp - 1), min_size=1, max_size=4, unique=True))
        return kit.Clamp(layer, neurons, value=draw(st.floats(-5, 5)), pos=_positions(draw, n))
    if kind == "steer":
        vec = torch.randn(model.d_model, generator=torch.Generator().manual_seed(draw(st.integers(0, 99))))
        return kit.Steer(vec, layer, pos=_positions(draw, n), scale=draw(st.floats(-3, 3)),
                         name=draw(st.sampled_from(["resid_pre", "resid_post"])))
    if kind == "knockout":
        return kit.Knockout(layer, query=_positions(draw, n), key=_positions(draw, n),
                            head=heads if draw(st.booleans()) else None)
    point = draw(st.sampled_from(["resid_pre", "mlp_post", "attn_scores", "pattern", "z"]))
    factor = draw(st.floats(-2, 2))
    return kit.Edit(point, layer, lambda x, f=factor: x * f)  # position-wise: keeps causality


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_logits_at_a_position_never_depend_on_later_tokens_under_any_intervention(tiny_models, data):
    family = data.draw(st.sampled_from(sorted(tiny_models)), label="family")
    model = tiny_models[family]
    n = data.draw(st.integers(2, 10), label="n_tokens")
    ids = data.draw(st.lists(st.integers(VOCAB_LO, model.vocab_size - 1), min_size=n, max_size=n), label="ids")
    i = data.draw(st.integers(0, n - 2), label="i")
    future = data.draw(st.lists(st.integers(VOCAB_LO, model.vocab_size - 1), min_size=n - 1 - i,
                                max_size=n - 1 - i), label="future")
    gen = torch.Generator().manual_seed(n)
    source = model.trace(torch.randint(VOCAB_LO, model.vocab_size, (1, n), generator=gen))
    reference = model.trace(torch.randint(VOCAB_LO, model.vocab_size, (2, 7), generator=gen), capture=["z"])
    ivs = [_intervention(data.draw, model, n, source, reference)
           for _ in range(data.draw(st.integers(1, 3), label="n_interventions"))]
    changed = ids[: i + 1] + future
    a = model.trace([ids], capture=[], interventions=ivs)
    b = model.trace([changed], capture=[], interventions=ivs)
    torch.testing.assert_close(a.logits[0, : i + 1], b.logits[0, : i + 1], atol=ATOL, rtol=0)


@pytest.mark.parametrize("key", [0, [0, 1]])
def test_knocked_out_rows_stay_zero_in_a_padded_batch(tiny_models, key):
    """A short prompt next to a long one: its blocked queries see neither the future nor the padding."""
    model = tiny_models["llama"]
    ko = [kit.Knockout(layer=[0, 1], query=[0, 1], key=key)]
    tr = model.trace([[5, 6, 7, 8, 9, 10, 11], [5, 6, 7]], capture=["pattern"], interventions=ko)
    single = model.trace([[5, 6, 7]], capture=["pattern"], interventions=ko)
    for l in (0, 1):
        torch.testing.assert_close(tr["pattern", l][1, :, :3, :3], single["pattern", l][0], atol=1e-6, rtol=0)
        assert tr["pattern", l][:, :, 0].abs().max() == 0
    torch.testing.assert_close(tr.logits[1, :3], single.logits[0], atol=1e-5, rtol=0)
