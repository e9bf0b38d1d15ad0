"""The induction card's offset table (``kit.train.card``) and ``--measure``'s figures, on made-up rows."""

from __future__ import annotations

import json

import pytest

from kit.train import build
from kit.train.card import _offset_lines


def _row(bos, prefix, T, score=0.9, ratio=0.1):
    return {"bos": bos, "prefix": prefix, "half_len": T, "induction_score": score, "loss_ratio": ratio}


def test_no_offset_table_without_rows():
    assert _offset_lines({}) == [] and _offset_lines({"offset_curve": []}) == []


def test_the_table_has_a_row_per_bos_and_prefix_and_a_dash_where_the_copies_do_not_fit():
    rows = [_row(True, 8, 4, 0.85, 0.25), _row(True, 8, 8), _row(False, 64, 4, 0.95, 0.15)]
    lines = _offset_lines({"offset_curve": rows})
    assert "| `<|bos|>`, P | T = 4 | T = 8 |" in lines
    assert "| with, 8 | 0.850, 0.250 | 0.900, 0.100 |" in lines
    assert "| without, 64 | 0.950, 0.150 | - |" in lines
    assert lines.index("| with, 8 | 0.850, 0.250 | 0.900, 0.100 |") < lines.index("| without, 64 | 0.950, 0.150 | - |")
    text = "\n".join(lines)
    assert "The lowest best induction score is 0.850 (T = 4, P = 8, with `<|bos|>`)." in text
    assert ("The loss ratio exceeds 0.2 in 1 of 3 cells, all at T <= 4 (highest 0.250: T = 4, P = 8); it is at "
            "most 0.2 in every cell from T = 8 on.") in text


def test_a_ratio_of_exactly_the_target_holds_and_one_just_above_does_not():
    at = _offset_lines({"offset_curve": [_row(True, 8, 4, ratio=0.2), _row(True, 8, 8)]})
    assert "- The loss ratio is at most 0.2 in every cell." in at
    above = "\n".join(_offset_lines({"offset_curve": [_row(True, 8, 4, ratio=0.2001), _row(True, 8, 8)]}))
    assert "exceeds 0.2 in 1 of 2 cells" in above and "from T = 8 on" in above


def test_holds_from_is_the_shortest_length_after_which_every_cell_holds():
    rows = [_row(True, 8, 4, ratio=0.3), _row(True, 8, 6), _row(True, 32, 6, ratio=0.21), _row(True, 8, 8)]
    text = "\n".join(_offset_lines({"offset_curve": rows}))
    assert "all at T <= 6 (highest 0.300: T = 4, P = 8); it is at most 0.2 in every cell from T = 8 on" in text


def test_measure_dir_reports_the_offset_table_with_the_curve(tmp_path, monkeypatch):
    (tmp_path / "figures.json").write_text(json.dumps({"recipe_kind": "induction", "measure_settings": {"n_seqs": 3}}))
    model = object()
    seen = []
    monkeypatch.setattr(build.AutoModelForCausalLM, "from_pretrained",
                        lambda path: type("M", (), {"eval": lambda self: model})())
    monkeypatch.setattr(build, "measure_induction", lambda m, **kw: seen.append(("measure", m, kw)) or {"a": 1})
    monkeypatch.setattr(build, "induction_curve", lambda m: seen.append(("curve", m)) or ["c"])
    monkeypatch.setattr(build, "offset_curve", lambda m: seen.append(("offset", m)) or ["o"])
    assert build.measure_dir(tmp_path) == {"a": 1, "curve": ["c"], "offset_curve": ["o"]}
    assert seen == [("measure", model, {"n_seqs": 3}), ("curve", model), ("offset", model)]


@pytest.mark.parametrize("prefixes", [(8,), (8, 100)])
def test_offset_curve_skips_what_does_not_fit(prefixes, monkeypatch):
    from kit.train import induction

    calls = []
    monkeypatch.setattr(induction.metrics, "induction_scores",
                        lambda m, **kw: calls.append(kw) or __import__("torch").tensor([[0.1, 0.2], [0.3, 0.7]]))
    monkeypatch.setattr(induction.metrics, "repeated_sequence_losses", lambda m, **kw: {"first": 4.0, "second": 0.5})
    model = type("M", (), {"config": type("C", (), {"n_positions": 128})(), "eval": lambda self: self})()
    rows = induction.offset_curve(model, prefixes=prefixes, lengths=(4, 32, 60))
    # with <|bos|>: 1 + P + 2T <= 128; without: P + 2T <= 128
    want = [(b, P, T) for b in (True, False) for P in prefixes for T in (4, 32, 60) if int(b) + P + 2 * T <= 128]
    assert [(r["bos"], r["prefix"], r["half_len"]) for r in rows] == want
    assert (True, 8, 60) not in want and (False, 8, 60) in want
    assert rows[0] == {"bos": True, "prefix": 8, "half_len": 4, "induction_score": 0.7, "loss_ratio": 0.125}
    assert calls[0] == {"n_seqs": 32, "half_len": 4, "seed": 0, "bos": True, "prefix": 8}


def test_a_model_whose_ratio_never_holds_gets_a_card_that_says_so():
    # an untrained run (the CLI writes a card for it too): over 0.2 at the longest length as well
    rows = [_row(True, 8, 4, 0.02, 0.99), _row(True, 8, 48, 0.01, 1.0), _row(False, 8, 4, 0.03, 0.15)]
    text = "\n".join(_offset_lines({"offset_curve": rows}))
    assert ("- The loss ratio exceeds 0.2 in 2 of 3 cells, the longest repeats included (highest 1.000: T = 48, "
            "P = 8).") in text
    assert "from T =" not in text and "short repeats" not in text
