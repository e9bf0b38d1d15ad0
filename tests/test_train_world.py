"""The synthetic world behind facts-4l: size, templates, held-out split, determinism, JSON round trip."""

from __future__ import annotations

import pytest

from kit.train.world import HELD_OUT, TEMPLATES, load_world, make_world


def test_world_has_enough_entities_and_templates():
    w = make_world(0)
    assert w.entity_count() >= 200
    assert len(w.countries) >= 40 and len(w.people) >= 60
    for rel, templates in TEMPLATES.items():
        assert len(templates) >= 8, rel
        assert all(t.count("{s}") == 1 for t in templates)
    assert {f.relation for f in w.facts} == set(TEMPLATES)


def test_held_out_templates_are_never_in_training_sentences():
    w = make_world(0)
    for rel in TEMPLATES:
        train, held = w.templates(rel, "train"), w.templates(rel, "heldout")
        assert len(held) == HELD_OUT and not set(train) & set(held)
    train_text = set(w.sentences("train"))
    assert not train_text & set(w.sentences("heldout"))


def test_subject_comes_before_the_answer_in_every_prompt():
    w = make_world(0)
    for prompt, answer, subject, fact in w.examples("all")[:500]:
        assert subject in prompt and not prompt.endswith(" ")
        assert answer == " " + fact.answer


def test_world_is_deterministic_and_round_trips_through_json(tmp_path):
    a, b = make_world(3), make_world(3)
    assert a.facts == b.facts and a.countries == b.countries
    assert make_world(4).facts != a.facts
    a.save(tmp_path)
    loaded = load_world(tmp_path)
    assert loaded.facts == a.facts and loaded.people == a.people


def test_missing_world_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no world file"):
        load_world(tmp_path / "nowhere")


def test_names_are_unique():
    w = make_world(0)
    names = [c["name"] for c in w.countries] + [c["capital"] for c in w.countries] + [p["name"] for p in w.people]
    assert len(names) == len(set(names))
