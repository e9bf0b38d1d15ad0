"""Tests with teeth for the `core2` mutation group (benchmarks/mutation.py): the shared head scores
(``kit.head_scores``), exercise variants and the student id (``kit.lessons.variants``, ``student``), and the
lessons' helpers for learners' functions and head names (``kit.lessons._learner``, ``_names``).

Head scores are checked against an independent loop over positions on patterns whose answer is known
exactly: one-hot patterns (score 0, 1 or k/n) and random rows (the mean of the right entries), with and
without a BOS column, and the near misses one position off.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
import torch

from kit import head_scores as hs
from kit.lessons import _learner, _names, student, variants

pytestmark = pytest.mark.usefixtures("no_student")  # tests/conftest.py: no student before and after


# --- kit.head_scores: independent definitions, one position at a time -----------------------------------------

def _prev_by_loop(p: torch.Tensor) -> torch.Tensor:
    """``pattern[..., q, k]`` -> mean over queries 1..n-1 of ``p[..., q, q - 1]``, one query at a time."""
    n = p.shape[-1]
    return sum(p[..., q, q - 1].double() for q in range(1, n)) / (n - 1)


def _induction_by_loop(p: torch.Tensor, T: int, offset: int) -> torch.Tensor:
    """On ``[bos]*offset x x``: each query of the second copy attends to the token after its first occurrence."""
    total = 0
    for j in range(T):  # j-th token of the second copy
        q = offset + T + j
        k = offset + j + 1  # the token after the j-th token's first occurrence
        total = total + p[..., q, k].double()
    return total / T


def _random_pattern(*shape: int, seed: int) -> torch.Tensor:
    """Causal softmax rows ``pattern[..., query, key]``, every entry different."""
    g = torch.Generator().manual_seed(seed)
    n = shape[-1]
    scores = torch.randn(*shape, n, generator=g) * 3
    scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(-1)


@pytest.mark.parametrize("n", [2, 3, 9], ids=["n2", "n3", "n9"])
def test_prev_token_score_equals_the_loop_on_random_rows(n):
    p = _random_pattern(2, 3, n, seed=n)  # [layer, head, query, key]
    got = hs.prev_token_score(p)
    assert got.shape == (2, 3) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), _prev_by_loop(p), rtol=0, atol=1e-6)


def test_prev_token_score_on_two_positions_is_query_ones_weight_on_key_zero():
    p = torch.tensor([[1.0, 0.0], [0.3, 0.7]])
    assert float(hs.prev_token_score(p)) == pytest.approx(0.3, abs=1e-7)


@pytest.mark.parametrize("shape", [(1, 1), (3, 1, 1), (2, 0, 1)], ids=["1x1", "3x1x1", "empty-1"])
def test_prev_token_score_refuses_a_single_position_with_the_count(shape):
    with pytest.raises(ValueError, match=re.escape("a previous-token score needs at least 2 positions, got 1")):
        hs.prev_token_score(torch.ones(shape))


def test_prev_token_score_of_half_precision_is_averaged_in_float32():
    p = torch.zeros(1, 300, 300, dtype=torch.bfloat16)
    idx = torch.arange(1, 300)
    p[0, idx, idx - 1] = 1.0
    p[0, 1, 0] = 0.0  # 298 of 299 queries: 0.99666..., which bfloat16 cannot hold (it rounds to 0.99609 or 1.0)
    got = hs.prev_token_score(p)
    assert got.dtype == torch.float32
    assert float(got) == pytest.approx(298 / 299, abs=1e-6)


@pytest.mark.parametrize("offset", [0, 1], ids=["no-bos", "bos"])
@pytest.mark.parametrize("T", [2, 3, 6], ids=["T2", "T3", "T6"])
def test_induction_score_equals_the_loop_on_random_rows(T, offset):
    p = _random_pattern(2, 4, offset + 2 * T + 2, seed=10 * T + offset)  # two positions to spare after x x
    got = hs.induction_score(p, T, offset)
    assert got.shape == (2, 4) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), _induction_by_loop(p, T, offset), rtol=0, atol=1e-6)
    # the near misses are far off on these rows: every query shifted by one, the key shifted by one
    for wrong in (_induction_by_loop(p, T, offset + 1), _induction_by_loop(p[..., :, 1:], T, offset)):
        assert float((got.double() - wrong).abs().max()) > 0.05


def test_induction_score_uses_exactly_the_queries_of_the_second_copy():
    T, offset, n = 3, 1, 9  # <bos> a b c a b c, then 2 more positions
    for q in range(n):
        for k in range(q + 1):
            p = torch.zeros(n, n)
            p[q, k] = 1.0
            expected = 1 / T if (offset + T <= q < offset + 2 * T and k == q - T + 1) else 0.0
            assert float(hs.induction_score(p, T, offset)) == pytest.approx(expected, abs=1e-7), (q, k)


def test_induction_score_fits_exactly_the_pattern_and_refuses_one_position_less():
    p = _random_pattern(7, seed=0)
    assert float(hs.induction_score(p, 3, offset=1)) == pytest.approx(float(_induction_by_loop(p, 3, 1)), abs=1e-6)
    assert float(hs.induction_score(p, 3.0, offset=0)) == pytest.approx(float(_induction_by_loop(p, 3, 0)), abs=1e-6)
    msg = ("seq_len=4, offset=0 do not fit a pattern over 7 positions "
           "(need 2 <= seq_len and offset + 2 * seq_len <= positions)")
    with pytest.raises(ValueError, match=re.escape(msg)):
        hs.induction_score(p, 4, offset=0)
    with pytest.raises(ValueError, match=re.escape("seq_len=3, offset=2 do not fit a pattern over 7 positions")):
        hs.induction_score(p, 3, offset=2)
    with pytest.raises(ValueError, match=re.escape("seq_len=1, offset=0 do not fit a pattern over 7 positions")):
        hs.induction_score(p, 1)
    with pytest.raises(ValueError, match=re.escape("seq_len=2, offset=-1 do not fit a pattern over 7 positions")):
        hs.induction_score(p, 2, offset=-1)


def test_induction_score_refusal_counts_the_positions_of_a_layer_head_pattern():
    p = _random_pattern(2, 4, 5, seed=1)  # [layer 2, head 4, query 5, key 5]: leading sizes are no positions
    with pytest.raises(ValueError, match=re.escape("seq_len=3, offset=0 do not fit a pattern over 5 positions")):
        hs.induction_score(p, 3)


def test_induction_score_defaults_to_no_bos():
    p = _random_pattern(3, 8, seed=4)
    torch.testing.assert_close(hs.induction_score(p, 3), hs.induction_score(p, 3, 0), rtol=0, atol=0)
    assert float((hs.induction_score(p, 3) - hs.induction_score(p, 3, 1)).abs().max()) > 0.05


def test_induction_score_of_half_precision_is_averaged_in_float32():
    T = 150
    p = torch.zeros(1 + 2 * T, 1 + 2 * T, dtype=torch.bfloat16)
    q = torch.arange(1 + T, 1 + 2 * T)
    p[q, q - T + 1] = 1.0
    p[1 + T, 2] = 0.0  # 149 of 150: 0.99333..., between two bfloat16 numbers
    got = hs.induction_score(p, T, 1)
    assert got.dtype == torch.float32 and float(got) == pytest.approx(149 / 150, abs=1e-6)


def _copy_losses_by_loop(loss: torch.Tensor, T: int, offset: int) -> dict[str, float]:
    first = [float(loss[b, offset + j]) for b in range(loss.shape[0]) for j in range(1, T)]
    second = [float(loss[b, offset + T + j]) for b in range(loss.shape[0]) for j in range(1, T)]
    return {"first": sum(first) / len(first), "second": sum(second) / len(second)}


@pytest.mark.parametrize("offset", [0, 1], ids=["no-bos", "bos"])
@pytest.mark.parametrize("T", [2, 5], ids=["T2", "T5"])
def test_copy_losses_equal_the_loop_over_tokens_two_to_T_of_each_copy(T, offset):
    g = torch.Generator().manual_seed(T + offset)
    loss = torch.rand(3, offset + 2 * T + 1, generator=g) * 10  # one position to spare
    got = hs.copy_losses(loss, T, offset)
    want = _copy_losses_by_loop(loss, T, offset)
    assert set(got) == {"first", "second"} and all(isinstance(v, float) for v in got.values())
    assert got["first"] == pytest.approx(want["first"], abs=1e-5)
    assert got["second"] == pytest.approx(want["second"], abs=1e-5)
    shifted = _copy_losses_by_loop(loss, T, offset + 1)
    assert abs(got["first"] - shifted["first"]) > 0.1 and abs(got["second"] - shifted["second"]) > 0.1


def test_copy_losses_fit_exactly_and_refuse_one_position_less():
    loss = torch.arange(7, dtype=torch.float32)[None]  # <bos> a b c a b c
    assert hs.copy_losses(loss, 3, 1) == {"first": 2.5, "second": 5.5}
    assert hs.copy_losses(loss, 3) == {"first": 1.5, "second": 4.5}  # default: no BOS
    assert hs.copy_losses(loss, 3.0, 1) == {"first": 2.5, "second": 5.5}
    with pytest.raises(ValueError, match=re.escape("seq_len=3, offset=2 do not fit 7 positions")):
        hs.copy_losses(loss, 3, 2)
    with pytest.raises(ValueError, match=re.escape("seq_len=4, offset=0 do not fit 7 positions")):
        hs.copy_losses(loss, 4)
    with pytest.raises(ValueError, match=re.escape("seq_len=1, offset=0 do not fit 7 positions")):
        hs.copy_losses(loss, 1)


def test_copy_losses_of_half_precision_are_averaged_in_float32():
    loss = torch.zeros(1, 601, dtype=torch.bfloat16)
    loss[0, 2:301] = 1.0
    loss[0, 2] = 2.0  # first copy: (298 + 2) / 299, not a bfloat16 number
    got = hs.copy_losses(loss, 300, 1)
    assert got["first"] == pytest.approx(300 / 299, abs=1e-6) and got["second"] == 0.0


def test_top_heads_names_layer_and_head_of_a_non_square_grid():
    scores = torch.tensor([[0.1, 0.9, 0.2], [0.8, 0.0, 0.5]])  # [layer 2, head 3]
    top = _top(hs.top_heads(scores))
    assert top == [(0, 1, 0.9), (1, 0, 0.8), (1, 2, 0.5)]  # the default k is 3, best first
    assert _top(hs.top_heads(scores, k=1)) == [(0, 1, 0.9)]
    assert [t[:2] for t in hs.top_heads(scores, k=6)] == [(0, 1), (1, 0), (1, 2), (0, 2), (0, 0), (1, 1)]
    tall = scores.T.contiguous()  # [layer 3, head 2]
    assert _top(hs.top_heads(tall, k=2)) == [(1, 0, 0.9), (0, 1, 0.8)]
    assert all(type(v) is int for t in hs.top_heads(scores) for v in t[:2]) and type(top[0][2]) is float


def _top(rows):
    return [(layer, head, round(score, 6)) for layer, head, score in rows]


def test_default_len_leaves_room_for_the_bos_and_never_goes_below_two():
    assert hs.DEFAULT_LEN == 50 and hs.DEFAULT_BATCH == 32 and hs.INDUCTION_THRESHOLD == 0.4
    assert hs.default_len(1000, False, 1) == 50
    assert hs.default_len(101, True, 2) == 50 and hs.default_len(100, True, 2) == 49
    assert hs.default_len(51, True, 1) == 50 and hs.default_len(50, True, 1) == 49 and hs.default_len(50, False, 1) == 50
    assert hs.default_len(7, True, 3) == 2 and hs.default_len(8, False, 3) == 2 and hs.default_len(9, False, 3) == 3
    assert hs.default_len(5, True, 2) == 2 and hs.default_len(3, True, 2) == 2  # the floor: one copy of 2 tokens


def test_random_tokens_draw_every_allowed_id_and_only_those_reproducibly():
    allowed = [5, 9, 11]
    ids = hs.random_tokens(allowed, batch=40, length=30, seed=3)
    assert ids.shape == (40, 30) and ids.dtype == torch.long
    assert set(ids.unique().tolist()) == {5, 9, 11}  # the last id too
    assert torch.equal(ids, hs.random_tokens(torch.tensor(allowed), 40, 30, 3))
    assert torch.equal(hs.random_tokens(allowed, 4, 6), hs.random_tokens(allowed, 4, 6, seed=0))
    assert not torch.equal(ids, hs.random_tokens(allowed, 40, 30, seed=4))
    torch.manual_seed(0)
    a = hs.random_tokens(range(100), 3, 8, seed=1)
    torch.manual_seed(1)
    assert torch.equal(a, hs.random_tokens(range(100), 3, 8, seed=1))  # the seed alone, not torch's global one
    assert hs.random_tokens(np.arange(3, 7), 2, 3).dtype == torch.long


@pytest.mark.parametrize("allowed", [torch.arange(3, 9, dtype=torch.int32), np.arange(3, 9, dtype=np.int16),
                                     torch.arange(3, 9, dtype=torch.uint8)], ids=["int32", "numpy-int16", "uint8"])
def test_random_tokens_are_long_ids_whatever_the_dtype_of_the_allowed_ids(allowed):
    ids = hs.random_tokens(allowed, 3, 5, seed=1)
    assert ids.dtype == torch.long  # what an embedding lookup and torch.cat with a long BOS column need
    assert ids.tolist() == hs.random_tokens(list(range(3, 9)), 3, 5, seed=1).tolist()


def test_with_bos_puts_any_id_first_including_zero():
    ids = torch.tensor([[4, 5], [6, 7]], dtype=torch.int32)
    out, offset = hs.with_bos(ids, 0)
    assert offset == 1 and out.dtype == torch.int32 and out.tolist() == [[0, 4, 5], [0, 6, 7]]
    out, offset = hs.with_bos(ids, 9)
    assert offset == 1 and out.tolist() == [[9, 4, 5], [9, 6, 7]]
    same, offset = hs.with_bos(ids, None)
    assert offset == 0 and same is ids


def test_repeated_tokens_defaults_no_bos_and_seed_zero():
    ids, offset = hs.repeated_tokens(range(3, 50), batch=2, seq_len=4)
    assert offset == 0 and ids.shape == (2, 8) and torch.equal(ids[:, :4], ids[:, 4:])
    assert torch.equal(ids[:, :4], hs.random_tokens(range(3, 50), 2, 4, seed=0))
    ids0, offset0 = hs.repeated_tokens(range(3, 50), batch=2, seq_len=4, seed=0, bos=0)
    assert offset0 == 1 and ids0[:, 0].tolist() == [0, 0] and torch.equal(ids0[:, 1:], ids)


# --- kit.lessons.variants ------------------------------------------------------------------------------------

def _sha_draw(who: str, exercise: str) -> int:
    """The documented draw: the first 8 bytes, big-endian, of SHA-256 of 'kit-variant/1', student, exercise."""
    return int.from_bytes(hashlib.sha256(f"kit-variant/1\0{who}\0{exercise}".encode()).digest()[:8], "big")


def test_a_students_instances_are_pinned_so_they_survive_an_upgrade():
    # a student's instance must not change between versions of the kit (their notebook and records keep it)
    assert [variants.variant_index("2.3 name the heads", 1000, student=s) for s in ("ada", "bob", "cy")] \
        == [661, 188, 256]
    assert variants.variant_index("2.3 name the heads", 1000, student="ada") \
        == _sha_draw("ada", "2.3 name the heads") % 1000
    assert [variants.variant_seed("2.1 previous-token score", 3, student=s) for s in ("ada", "bob")] \
        == [1567454463, 1284168121]
    assert variants.variant_seed("2.1 previous-token score", 3, student="ada") \
        == _sha_draw("ada", "2.1 previous-token score\0seed") % (2**31 - 1)


def test_variant_index_follows_the_current_student_unless_one_is_given():
    assert variants.variant_index("2.3 name the heads", 1000) == 0
    student.start("ada", record=False)
    assert variants.variant_index("2.3 name the heads", 1000) == 661
    assert variants.variant_index("2.3 name the heads", 1000, student="bob") == 188
    assert variants.variant("2.3 name the heads", list(range(1000))) == 661
    assert variants.variant_seed("2.1 previous-token score", 3) == 1567454463


def test_one_instance_is_everyone_and_differing_ids_or_names_differ():
    assert {variants.variant_index("1.1 ex", 1, student=f"s{i}") for i in range(20)} == {0}
    assert variants.variant("1.1 ex", ("only",), student="ada") == "only"  # a tuple is a sequence too
    by_student = {variants.variant_index("1.1 ex", 2**40, student=f"s{i}") for i in range(50)}
    by_exercise = {variants.variant_index(f"1.{i} ex", 2**40, student="ada") for i in range(50)}
    assert len(by_student) == 50 and len(by_exercise) == 50


@pytest.mark.parametrize("n", [0, -1, True, 2.0, "3", None], ids=["0", "-1", "True", "2.0", "str", "None"])
def test_variant_index_refuses_a_count_that_is_not_a_positive_int(n):
    with pytest.raises(ValueError, match=re.escape(f"n must be a positive int (the number of instances), got {n!r}")):
        variants.variant_index("1.1 ex", n, student="ada")


@pytest.mark.parametrize("name", ["", "   ", None, 3], ids=["empty", "blank", "None", "int"])
def test_variant_index_refuses_an_exercise_without_a_name(name):
    msg = f"exercise must be the exercise's name, e.g. '2.3 name the heads'; got {name!r}"
    with pytest.raises(ValueError, match=re.escape(msg)):
        variants.variant_index(name, 3, student="ada")
    with pytest.raises(ValueError, match=re.escape(msg)):
        variants.variant(name, [1, 2, 3], student="ada", where=lambda x: True)  # `where` checks the name too


@pytest.mark.parametrize("choices", [frozenset({1, 2}), {"a": 1}, "ab", 5], ids=["frozenset", "dict", "str", "int"])
def test_variant_refuses_choices_without_a_fixed_order_naming_the_type(choices):
    msg = f"choices must be a list or tuple in a fixed order, got {type(choices).__name__}"
    with pytest.raises(ValueError, match=re.escape(msg)):
        variants.variant("1.1 ex", choices, student="ada")


def test_variant_refuses_no_choices_naming_the_exercise():
    with pytest.raises(ValueError, match=re.escape("exercise '1.1 ex': no choices to draw from")):
        variants.variant("1.1 ex", [], student="ada")
    with pytest.raises(ValueError, match=re.escape("exercise '1.1 ex': no choices to draw from")):
        variants.variant("1.1 ex", (), where=lambda x: True)


def test_where_tries_the_instances_in_the_students_own_order():
    for who, order in (("ada", [4, 0, 3, 2, 1, 5]), ("bob", [4, 2, 0, 5, 1, 3])):
        tried = []
        with pytest.raises(ValueError, match=re.escape("exercise '1.1 ex': none of the 6 choices passes `where`")):
            variants.variant("1.1 ex", list(range(6)), student=who, where=lambda x: tried.append(x) or False)
        assert tried == order
        # the order is the documented draw per instance, sorted
        assert order == sorted(range(6), key=lambda i: _sha_draw(who, f"1.1 ex\0{i}"))
    tried = []
    with pytest.raises(ValueError, match="none of the 4 choices"):
        variants.variant("1.1 ex", list(range(4)), where=lambda x: tried.append(x) or False)
    assert tried == [0, 1, 2, 3]  # no student: the lesson's order
    assert variants.variant("1.1 ex", list(range(6)), student="ada", where=lambda x: x in (2, 3)) == 3
    assert variants.variant("1.1 ex", list(range(6)), student="bob", where=lambda x: x in (2, 3)) == 2
    student.start("ada", record=False)
    assert variants.variant("1.1 ex", list(range(6)), where=lambda x: x in (2, 3)) == 3  # the current student's


def test_a_student_given_explicitly_never_consults_the_environment(monkeypatch):
    import warnings

    monkeypatch.setenv("KIT_STUDENT", "not valid")  # reading it would warn
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert variants.variant("1.1 ex", list(range(6)), student="ada", where=lambda x: x in (2, 3)) == 3
        assert variants.variant("2.3 name the heads", list(range(1000)), student="ada") == 661
        assert variants.variant_index("2.3 name the heads", 1000, student="ada") == 661
        assert variants.variant_seed("2.1 previous-token score", 3, student="ada") == 1567454463


def test_variant_seed_is_the_default_without_a_student_and_never_the_default_with_one():
    assert variants.variant_seed("2.1 previous-token score", 17) == 17
    seed = variants.variant_seed("2.1 previous-token score", 3, student="ada")
    # a default that happens to equal the student's draw is stepped over by one
    assert variants.variant_seed("2.1 previous-token score", seed, student="ada") == seed + 1
    assert variants.variant_seed("2.1 previous-token score", seed + 1, student="ada") == seed
    assert variants.variant_seed("2.1 other", 3, student="ada") != seed  # the exercise enters the seed


# --- kit.lessons.student -------------------------------------------------------------------------------------

@pytest.mark.parametrize("good", ["a", "7", "ada.lovelace", "a_b-c@d+e", "A" * 64, "x" + "9" * 63],
                         ids=["a", "7", "dotted", "every-sign", "64-letters", "64-mixed"])
def test_valid_student_ids(good):
    assert student.valid_student_id(good) is True
    assert student.start(good, record=False).student == good


@pytest.mark.parametrize("bad", ["", "A" * 65, ".ada", "_ada", "-ada", "@ada", "+ada", "ada lovelace", "ada/x",
                                 "ada\n", "é", None, 5, b"ada"],
                         ids=["empty", "65", "dot", "underscore", "dash", "at", "plus", "space", "slash", "newline",
                              "accent", "None", "int", "bytes"])
def test_invalid_student_ids_are_refused_with_what_is_valid(bad):
    assert student.valid_student_id(bad) is False
    msg = (f"student id {bad!r} is not valid: use 1-64 letters, digits or . _ - @ +, starting "
           f"with a letter or digit, e.g. 'ada' or 'ada.lovelace'")
    with pytest.raises(ValueError, match=re.escape(msg)):
        student.start(bad)
    assert student.current_student() is None  # nothing set


def test_start_sets_the_session_and_stop_forgets_it(tmp_path, monkeypatch):
    s = student.start("ada")
    assert (s.student, s.record, s.folder) == ("ada", True, None)
    assert student.session() is s and student.current_student() == "ada"
    s = student.start("bob", record=0, folder=str(tmp_path))
    assert s.record is False and s.folder == tmp_path and isinstance(s.folder, type(tmp_path))
    assert student.current_student() == "bob"
    monkeypatch.setenv("KIT_STUDENT", "cy")
    assert student.current_student() == "bob"  # start wins over the environment
    student.stop()
    assert student.current_student() == "cy" and student.session() == student.Session("cy")
    monkeypatch.delenv("KIT_STUDENT")
    assert student.session() is None and student.current_student() is None


def test_session_repr_says_who_and_where():
    assert repr(student.Session("ada")) == "kit.lessons session for student 'ada' (recording to .kit-progress/)"
    assert repr(student.Session("ada", True, student.Path("/tmp/p"))) \
        == "kit.lessons session for student 'ada' (recording to /tmp/p)"
    assert repr(student.Session("ada", False, student.Path("/tmp/p"))) \
        == "kit.lessons session for student 'ada' (recording off)"


def test_the_environment_names_the_student_kit_student_first(monkeypatch, recwarn):
    assert (student.ENV_STUDENT, student.ENV_HUB_USER) == ("KIT_STUDENT", "JUPYTERHUB_USER")
    monkeypatch.setenv("JUPYTERHUB_USER", "hubby")
    assert student.current_student() == "hubby"
    monkeypatch.setenv("KIT_STUDENT", "  ada  ")
    assert student.current_student() == "ada" and student.session() == student.Session("ada")
    monkeypatch.setenv("KIT_STUDENT", "   ")  # blank: the next variable applies, with no warning
    assert student.current_student() == "hubby"
    assert len(recwarn) == 0


def test_an_invalid_environment_id_warns_by_name_and_the_next_one_applies(monkeypatch):
    monkeypatch.setenv("KIT_STUDENT", "not valid")
    monkeypatch.setenv("JUPYTERHUB_USER", "hubby")
    msg = "$KIT_STUDENT='not valid' is not a valid student id (1-64 letters, digits or . _ - @ +); ignored"
    with pytest.warns(UserWarning, match=re.escape(msg)) as caught:
        assert student.current_student() == "hubby"
    assert len(caught) == 1
    monkeypatch.delenv("KIT_STUDENT")
    monkeypatch.setenv("JUPYTERHUB_USER", "../x")
    with pytest.warns(UserWarning, match=re.escape("$JUPYTERHUB_USER='../x' is not a valid student id")):
        assert student.current_student() is None


def test_the_warning_points_at_the_callers_caller(monkeypatch):
    # stacklevel=3: session() <- current_student() / variant_index() <- the code that asked (here, this file)
    monkeypatch.setenv("KIT_STUDENT", "not valid")
    with pytest.warns(UserWarning) as caught:
        student.current_student()
    if caught[0].filename.endswith("trampoline.py"):  # under mutmut, its trampolines add frames to every call
        pytest.skip("mutmut's trampolines change the stack this test measures")
    assert caught[0].filename == __file__


# --- kit.lessons._learner ------------------------------------------------------------------------------------

def test_todo_is_the_unanswered_verdict_with_the_exercises_hint():
    v = _learner.todo("2.2 write it", "use torch.diagonal")
    assert (v.exercise, v.status) == ("2.2 write it", "unanswered")
    assert v.message == "write the function's body (it still raises NotImplementedError). Hint: use torch.diagonal"


def test_run_learner_returns_the_value_or_the_verdict():
    def ok(a, b):
        return a * b

    def stub(a, b):
        raise NotImplementedError

    def buggy(a, b):
        raise KeyError("oops")

    assert _learner.run_learner("2.2 ex", "a hint", ok, 3, 4) == (12, None)
    value, v = _learner.run_learner("2.2 ex", "a hint", stub, 3, 4)
    assert value is None and v == _learner.todo("2.2 ex", "a hint")
    value, v = _learner.run_learner("2.2 ex", "a hint", buggy, 3, 4)
    assert value is None and v.status == "failed" and v.exercise == "2.2 ex"
    assert v.message.startswith("your function raised KeyError: 'oops' (line ") and "a hint" not in v.message
    value, v = _learner.run_learner("2.2 ex", "a hint", 5)
    assert value is None and (v.status, v.message) == ("failed", "expected a function, got int")


# --- kit.lessons._names --------------------------------------------------------------------------------------

def test_head_name_spells_layer_then_head():
    assert _names.head_name(1, 3) == "L1H3" and _names.head_name(10, 0) == "L10H0"
    assert _names.head_name(np.int64(2), torch.tensor(5)) == "L2H5"


@pytest.mark.parametrize("text", ["L1H3", "l1h3", "L1 H3", " l 1 h 3 ", "L1.H3", "l01h03"],
                         ids=["canonical", "lower", "space", "spaces", "dot", "zeros"])
def test_parse_head_reads_any_case_and_spacing(text):
    assert _names.parse_head(text, 2, 4) == (1, 3)


@pytest.mark.parametrize("value", [(1, 3), [1, 3], torch.tensor([1, 3]), torch.tensor([[1], [3]]),
                                   (np.int64(1), np.int32(3))],
                         ids=["tuple", "list", "tensor", "tensor-2x1", "numpy"])
def test_parse_head_reads_pairs_of_ints(value):
    got = _names.parse_head(value, 2, 4)
    assert got == (1, 3) and all(type(v) is int for v in got)


@pytest.mark.parametrize("value", ["L2H0", "L0H4", "L1H", "LH3", "L1H3x", "xL1H3", "L1..H3", "L-1H3", "H3L1",
                                   (2, 0), (0, 4), (-1, 0), (0, -1), (1, 3, 0), (1,), (True, 0), (1, 2.0),
                                   torch.tensor([1.0, 3.0]), torch.tensor([1, 3, 0]), torch.tensor(1), None, 13,
                                   {1: 3}],
                         ids=["layer-past", "head-past", "no-head", "no-layer", "trailing", "leading", "two-dots",
                              "negative", "swapped", "pair-layer-past", "pair-head-past", "pair-neg-layer",
                              "pair-neg-head", "triple", "single", "bool", "float", "float-tensor",
                              "tensor-of-3", "scalar-tensor", "None", "int", "dict"])
def test_parse_head_names_no_head_outside_the_model_or_the_spelling(value):
    assert _names.parse_head(value, 2, 4) is None


def test_parse_head_accepts_the_last_layer_and_head():
    assert _names.parse_head("L1H3", 2, 4) == (1, 3) and _names.parse_head((0, 0), 2, 4) == (0, 0)
    assert _names.parse_head("L1H3", 1, 4) is None and _names.parse_head("L1H3", 2, 3) is None


@pytest.mark.parametrize("name, want", [("l1h2", "L1H2"), ((1, 2), "L1H2"), ("embed", "embed"), ("Embedding", "embed"),
                                        (" EMBEDDINGS ", "embed"), ("mlp2", "MLP2"), ("MLP 0", "MLP0"),
                                        ("Mlp.1", "MLP1"), ("MLP02", "MLP2")],
                         ids=["head", "pair", "embed", "embedding", "embeddings", "mlp", "mlp-space", "mlp-dot",
                              "mlp-zero"])
def test_parse_component_gives_the_canonical_spelling(name, want):
    assert _names.parse_component(name, 3, 4) == want


@pytest.mark.parametrize("name", ["MLP3", "mlp", "mlp-1", "attn0", "embeds", "unembed", "L3H0", (3, 0), 2, None, ""],
                         ids=["mlp-past", "mlp-bare", "mlp-neg", "attn", "embeds", "unembed", "head-past",
                              "pair-past", "int", "None", "empty"])
def test_parse_component_names_nothing_else(name):
    assert _names.parse_component(name, 3, 4) is None


def test_head_help_names_both_ranges():
    assert _names.head_help(2, 4) == ("write a head as 'L<layer>H<head>' (e.g. 'L1H2') or as (layer, head), with "
                                      "layer in 0..1 and head in 0..3")
