"""Lesson 01's checks (``kit.lessons.attention``) against the mutants that survived the first
mutation run (issue 16): the exact tolerance, answers right at layer 0 and wrong later (and the reverse),
the stub's hint, tensors and negative indices as positions, and the exact messages a learner reads."""

from __future__ import annotations

import pytest
import torch

from kit.lessons.attention import (
    EX_ATTEND, EX_DLA, EX_LENS, EX_RESID, HINT_ATTEND, HINT_RESID, _ordinal, answer_ranks, check_first_top1_layer,
    check_most_attended, check_residual_from_parts, check_top_component, component_effects, relation_competitors,
)
from kit.train import load_world


ZOO_MODEL = "facts-4l"  # the `model` fixture of tests/conftest.py


@pytest.fixture(scope="module")
def world():
    return load_world()


@pytest.fixture(scope="module")
def tr(model, world):
    return model.trace(f"The capital of {world.countries[0]['name']} is")  # 8 tokens, as the lesson's


def parts(tr, layer):
    return tr["resid_pre", 0] + sum(tr["attn_out", l] + tr["mlp_out", l] for l in range(layer + 1))


def stub(*args):
    raise NotImplementedError


# --- 1.1 ---------------------------------------------------------------------------------------------

def test_residual_placeholder_and_stub_are_to_do_with_the_hint(tr):
    for answer in (..., stub):
        verdict = check_residual_from_parts(answer, tr)
        assert verdict.status == "unanswered" and verdict.exercise == EX_RESID and HINT_RESID in verdict.message


def test_residual_passes_naming_every_layer(tr):
    verdict = check_residual_from_parts(parts, tr)
    assert verdict.passed and verdict.exercise == EX_RESID
    assert verdict.message == ("your sum equals resid_post at all 4 layers: the residual stream is the embeddings "
                               "plus what every block wrote into it")


def _off_by(tr, layer_wrong, size):
    """``parts`` with one entry of layer ``layer_wrong`` moved by ``size`` (the entry nearest 0, where float32
    represents the move exactly enough)."""
    def fn(t, layer):
        out = parts(t, layer)
        if layer == layer_wrong:
            out = out.clone()
            i = int(out.abs().argmin())
            out.view(-1)[i] += size
        return out
    return fn


def _tol(tr, layer):
    return 1e-4 * float(tr["resid_post", layer].abs().max()) + 1e-5  # the check's stated tolerance


@pytest.mark.parametrize("layer", [0, 3])
def test_residual_tolerance_is_relative_plus_1e_5_and_no_more(tr, layer):
    tol = _tol(tr, layer)
    assert tol > 5e-5  # the relative part dominates on these activations (|resid| of order 1 to 10)
    # just inside: passes (a relative tolerance without its absolute part, or divided instead of
    # multiplied, refuses this); just outside: fails, naming the layer and the gap
    assert check_residual_from_parts(_off_by(tr, layer, tol - 5e-6), tr).passed
    assert check_residual_from_parts(_off_by(tr, layer, 0.5 * tol), tr).passed
    verdict = check_residual_from_parts(_off_by(tr, layer, tol + 5e-6), tr)
    assert not verdict and verdict.message.startswith(
        f"for layer {layer} your tensor differs from tr['resid_post', {layer}] by up to ")


def test_residual_embeddings_at_layer_0_are_named_exactly(tr):
    verdict = check_residual_from_parts(lambda t, layer: t["resid_pre", 0], tr)
    assert verdict.exercise == EX_RESID and verdict.message == (
        "for layer 0 you returned the embeddings; resid_post of layer 0 also holds what block 0 added: its "
        "attention output and its MLP output")


def test_residual_without_mlps_at_layer_0_is_named_not_called_the_embeddings(tr):
    verdict = check_residual_from_parts(
        lambda t, layer: t["resid_pre", 0] + sum(t["attn_out", l] for l in range(layer + 1)), tr)
    assert verdict.message == "you added the attention outputs but not the MLP outputs: every block adds both"


def test_residual_without_attention_is_named(tr):
    verdict = check_residual_from_parts(
        lambda t, layer: t["resid_pre", 0] + sum(t["mlp_out", l] for l in range(layer + 1)), tr)
    assert verdict.exercise == EX_RESID
    assert verdict.message == "you added the MLP outputs but not the attention outputs: every block adds both"


def test_residual_right_at_layer_0_then_one_block_short_names_the_missing_block(tr):
    verdict = check_residual_from_parts(lambda t, layer: parts(t, max(layer - 1, 0)), tr)
    assert verdict.exercise == EX_RESID and verdict.message == (
        "for layer 1 you returned resid_post of layer 0: include block 1 itself (sum l from 0 up to and including "
        "`layer`)")


def test_residual_two_blocks_short_is_not_called_one_block_short(tr):
    verdict = check_residual_from_parts(lambda t, layer: parts(t, max(layer - 2, 0)) if layer != 1 else parts(t, 1),
                                        tr)
    assert verdict.message.startswith("for layer 2 your tensor differs from tr['resid_post', 2] by up to ")


def test_residual_the_full_sum_at_every_layer_fails_at_layer_0_with_the_gap(tr):
    full = parts(tr, 3)
    verdict = check_residual_from_parts(lambda t, layer: parts(t, 3), tr)
    gap = float((full - tr["resid_post", 0]).abs().max())
    assert gap > 1.0
    assert verdict.message == (
        f"for layer 0 your tensor differs from tr['resid_post', 0] by up to {gap:.3g}; resid_post[layer] = "
        f"resid_pre[0] + sum over l <= layer of (attn_out[l] + mlp_out[l])")


def test_residual_shortcut_wrong_type_and_shape_messages_are_exact(tr):
    verdict = check_residual_from_parts(lambda t, layer: t["resid_post", layer], tr)
    assert verdict.exercise == EX_RESID and verdict.message == (
        "your function read tr['resid_post', 0] for layer 0: that is the answer itself, not the sum of its parts. "
        "Build it from tr['resid_pre', 0] (the embeddings) and tr['attn_out', l] + tr['mlp_out', l] for every "
        "block l <= layer")
    verdict = check_residual_from_parts(lambda t, layer: parts(t, layer).tolist(), tr)
    assert verdict.exercise == EX_RESID and verdict.message == (
        "for layer 0 your function returned list; return a tensor [batch, pos, d_model] like tr['resid_post', 0]")
    verdict = check_residual_from_parts(lambda t, layer: parts(t, layer)[0], tr)
    assert verdict.exercise == EX_RESID and verdict.message == (
        "for layer 0 your tensor has shape (8, 128), but the residual stream has shape (1, 8, 128) [batch, pos, "
        "d_model]: add whole activations, do not index or sum over positions")


def test_residual_embeddings_read_as_layer_minus_n_are_allowed(tr):
    # resid_pre of layer -4 is layer 0's (the embeddings), not a residual stream the learner must build
    assert check_residual_from_parts(lambda t, layer: parts(t, layer) - t["resid_pre", 0] + t["resid_pre", -4], tr)


def test_residual_reading_a_name_that_was_not_captured_reports_the_traces_own_error(tr):
    verdict = check_residual_from_parts(lambda t, layer: t["embed"] + parts(t, layer), tr)
    assert not verdict and "raised ValueError: 'embed' was not captured in this trace" in verdict.message


# --- 1.2 ---------------------------------------------------------------------------------------------

def argmax_key(tr, layer, head):
    return tr["pattern", layer][0, head, -1].argmax()  # a 0-d tensor


def test_most_attended_placeholder_and_stub_are_to_do_with_the_hint(tr):
    for answer in (..., stub):
        verdict = check_most_attended(answer, tr)
        assert verdict.status == "unanswered" and verdict.exercise == EX_ATTEND and HINT_ATTEND in verdict.message


def test_most_attended_tensor_positions_pass_and_the_message_counts_the_heads(tr):
    for fn in (argmax_key, lambda t, layer, head: argmax_key(t, layer, head).reshape(1)):
        verdict = check_most_attended(fn, tr)
        assert verdict.passed and verdict.exercise == EX_ATTEND
        assert verdict.message == "right for all 16 heads: you can read a pattern as [batch, head, query, key]"


def test_most_attended_minus_n_names_key_0(model, world):
    # on this prompt some head's last token attends most to <|bos|> (key 0): -n, the same key counted
    # from the end, is right
    tr = model.trace(f"{world.countries[0]['name']} is a country in")
    n = tr.lengths[0]
    keys = [tr["pattern", l][0, :, n - 1, :n].argmax(-1) for l in range(model.n_layers)]
    assert any(bool((k == 0).any()) for k in keys)
    assert check_most_attended(lambda t, layer, head: int(argmax_key(t, layer, head)) - n, tr)


@pytest.mark.parametrize("offset", [0, 1])
def test_most_attended_n_or_more_is_out_of_range_with_the_valid_positions(tr, offset):
    verdict = check_most_attended(lambda t, layer, head: 8 + offset, tr)
    assert verdict.exercise == EX_ATTEND and verdict.message == (
        f"for L0H0 you returned position {8 + offset}, but the prompt has only 8 tokens (0 .. 7)")
    verdict = check_most_attended(lambda t, layer, head: -9, tr)
    assert verdict.message == "for L0H0 you returned position -9, but the prompt has only 8 tokens (0 .. 7)"


def test_most_attended_wrong_type_and_fraction_messages_are_exact(tr):
    verdict = check_most_attended(lambda t, layer, head: "3", tr)
    assert verdict.exercise == EX_ATTEND and verdict.message == (
        "for L0H0 you returned str; return one key position as an int (0 .. 7)")
    verdict = check_most_attended(lambda t, layer, head: 2.5, tr)
    assert verdict.exercise == EX_ATTEND and verdict.message == (
        "for L0H0 you returned 2.500, an attention weight; return the position (an int): the argmax, not the max")


def test_most_attended_wrong_key_gives_both_weights(tr):
    row = tr["pattern", 0][0, 0, -1]
    want = int(row.argmax())
    wrong = (want + 1) % 8
    verdict = check_most_attended(lambda t, layer, head: wrong, tr)
    assert verdict.exercise == EX_ATTEND and verdict.message == (
        f"for L0H0 you returned position {wrong}, which the last token attends to with weight "
        f"{float(row[wrong]):.2f}; another key gets {float(row[want]):.2f}. pattern is [batch, head, query, key]: "
        f"fix the query at the last token and take the argmax over the key axis")


# --- 1.3 ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fact(model, world):
    person = world.people[0]  # as the lesson picks it
    answer = " " + person["profession"]
    return f"{person['name']} works as a", answer, relation_competitors(model, world, "profession", answer)


def test_ordinals_read_as_english():
    assert [_ordinal(r) for r in (0, 1, 2, 3, 9, 10, 11, 12, 19, 20, 21, 22, 100, 110, 111, 112)] == [
        "1st", "2nd", "3rd", "4th", "10th", "11th", "12th", "13th", "20th", "21st", "22nd", "23rd", "101st", "111th",
        "112th", "113th"]


def test_first_top1_passes_with_the_ranks_by_layer(model, fact):
    ranks = answer_ranks(model, *fact[:2])
    assert ranks[0] > 0 and ranks[1] == 0  # on this prompt the answer becomes top-1 after layer 1
    for answer in (1, torch.tensor(1)):
        verdict = check_first_top1_layer(answer, model, *fact[:2])
        assert verdict.passed and verdict.exercise == EX_LENS and verdict.message == (
            f"after layer 1 the residual stream already ranks {fact[1]!r} top-1 (ranks by layer: {ranks})")


def test_first_top1_too_early_names_the_rank_as_an_ordinal(model, fact):
    ranks = answer_ranks(model, *fact[:2])
    verdict = check_first_top1_layer(0, model, *fact[:2])
    assert verdict.exercise == EX_LENS and verdict.message == (
        f"after layer 0 the logit lens ranks {fact[1]!r} {_ordinal(ranks[0])}, not 1st; look later")


def test_first_top1_a_later_top1_layer_is_told_to_look_earlier(model, fact):
    verdict = check_first_top1_layer(2, model, *fact[:2])
    assert verdict.exercise == EX_LENS and verdict.message == (
        f"after layer 2 {fact[1]!r} is top-1 indeed, but it already is after an earlier layer: look for the first one")


@pytest.mark.parametrize("answer", [-1, 4])
def test_first_top1_layers_just_outside_the_model_do_not_exist(model, fact, answer):
    verdict = check_first_top1_layer(answer, model, *fact[:2])
    assert verdict.exercise == EX_LENS
    assert verdict.message == f"layer {answer} does not exist: this model has layers 0 .. 3"


def test_first_top1_wrong_types_are_named(model, fact):
    for answer, shown in ((True, "bool True"), ("1", "str '1'"), (1.0, "float 1.0")):
        verdict = check_first_top1_layer(answer, model, *fact[:2])
        assert verdict.exercise == EX_LENS
        assert verdict.message == f"give a layer number as an int (0 .. 3), not {shown}"


def test_first_top1_a_target_never_top1_is_said_so(model, fact):
    assert min(answer_ranks(model, fact[0], " capital")) > 0
    verdict = check_first_top1_layer(1, model, fact[0], " capital")
    assert verdict.exercise == EX_LENS and verdict.message == (
        "the model never ranks ' capital' top-1 on this prompt; check the prompt and target")


def test_first_top1_placeholder_hint_names_the_target(model, fact):
    verdict = check_first_top1_layer(None, model, *fact[:2])
    assert verdict.status == "unanswered" and verdict.exercise == EX_LENS
    assert f"logit_lens(tr, target={fact[1]!r}).target_rank[:, 0, -1]" in verdict.message


# --- 1.4 ---------------------------------------------------------------------------------------------

def test_component_effects_name_every_component_once(model, fact):
    effects = component_effects(model, *fact)
    assert list(effects)[:2] == ["embed", "L0H0"] and len(effects) == 1 + 4 * 4 + 4
    assert set(effects) == {"embed"} | {f"L{l}H{h}" for l in range(4) for h in range(4)} | {f"MLP{l}" for l in range(4)}
    raw = component_effects(model, *fact[:2])
    assert raw.keys() == effects.keys() and any(abs(raw[k] - effects[k]) > 0.5 for k in raw)


def test_top_component_pass_message_gives_the_effect_and_the_runner_up(model, fact):
    effects = component_effects(model, *fact)
    ranked = sorted(effects, key=effects.get, reverse=True)
    verdict = check_top_component("L1H3", model, *fact)
    assert verdict.passed and verdict.exercise == EX_DLA and verdict.message == (
        f"L1H3 adds {effects['L1H3']:+.2f} to the logit difference between {fact[1]!r} and the other answers, the "
        f"most of any component (next: {ranked[1]} {effects[ranked[1]]:+.2f})")


def test_top_component_raw_trap_message_is_exact(model, fact):
    raw, effects = component_effects(model, *fact[:2]), component_effects(model, *fact)
    verdict = check_top_component("MLP0", model, *fact)
    assert verdict.exercise == EX_DLA and verdict.message == (
        f"MLP0 has the largest effect on the raw logit of {fact[1]!r} ({raw['MLP0']:+.2f}), but against the other "
        f"answers it adds only {effects['MLP0']:+.2f}: it raises every answer of the relation, not the right one. "
        f"Attribute the logit difference (competitors given), not the raw logit")


def test_top_component_a_weaker_positive_component_is_told_to_compare_every_kind(model, fact):
    effects = component_effects(model, *fact)
    ranked = sorted(effects, key=effects.get, reverse=True)
    third = ranked[2]
    assert effects[third] > 0 and third != "MLP0"
    verdict = check_top_component(third, model, *fact)
    assert verdict.exercise == EX_DLA and verdict.message == (
        f"{third} adds {effects[third]:+.2f} to the logit difference (3rd largest); one component adds "
        f"{effects['L1H3']:+.2f}. Compare every head, every MLP and the embeddings, not only one kind")


def test_top_component_a_negative_component_is_told_largest_means_most_positive(model, fact):
    effects = component_effects(model, *fact)
    worst = min(effects, key=effects.get)
    assert effects[worst] < 0
    verdict = check_top_component(worst, model, *fact)
    assert verdict.exercise == EX_DLA and verdict.message == (
        f"{worst} adds {effects[worst]:+.2f} to the logit difference (21st largest): it pushes {fact[1]!r} down "
        f"relative to the others. 'Largest' means the most positive effect, not the largest in size")


def test_top_component_placeholder_and_unknown_name_messages(model, fact):
    verdict = check_top_component(..., model, *fact)
    assert verdict.status == "unanswered" and verdict.exercise == EX_DLA and "contrast_attribution" in verdict.message
    verdict = check_top_component("MLP4", model, *fact)
    assert verdict.exercise == EX_DLA and verdict.message == (
        "'MLP4' names no component of this model; write 'L<layer>H<head>' (e.g. 'L2H3'), 'MLP<layer>' (e.g. 'MLP1') "
        "or 'embed' (layers 0 .. 3, heads 0 .. 3)")


def test_residual_the_guarded_trace_answers_everything_but_the_streams(tr):
    # the learner's trace refuses only the residual streams; attributes such as .model pass through
    def via_model(t, layer):
        assert t.model.n_layers == 4 and t.lengths == tr.lengths
        return parts(t, layer)

    assert check_residual_from_parts(via_model, tr)


def test_top_component_placeholder_hint_is_exact(model, fact):
    assert check_top_component(None, model, *fact).message == (
        "replace the `...` with your answer. Hint: component_effects(model, prompt, answer, competitors) or "
        "contrast_attribution(tr, [answer], [competitors]) give each component's effect on the logit difference; "
        "name the largest, e.g. 'L2H3' or 'MLP1'")


def test_top_component_a_small_positive_effect_is_not_called_negative(model, fact):
    effects = component_effects(model, *fact)
    small = next(k for k in sorted(effects, key=effects.get) if 0 < effects[k] < 1 and k != "MLP0")
    verdict = check_top_component(small, model, *fact)
    assert "Compare every head, every MLP and the embeddings" in verdict.message and "pushes" not in verdict.message
