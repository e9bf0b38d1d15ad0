"""TrainingScrubber (Python side): what it shows, its traits, bad input, a run in progress, the shipped history."""

from __future__ import annotations

import pytest
import torch
import traitlets
from scrubber_fakes import STEPS, fake_history

from kit.train.history import TrainingHistory
from kit.widgets import TrainingScrubber
from kit.widgets._wire import decode_tensor


def _decoded(w, name):
    env = dict(w._data[name])
    data = env.pop("data")
    return decode_tensor(env, data)


def test_data_round_trips_scores_losses_and_patterns():
    h = fake_history()
    w = TrainingScrubber(h)
    assert w.step == STEPS[-1] and (w.layer, w.head) == (0, 0)
    assert _decoded(w, "steps").tolist() == STEPS
    torch.testing.assert_close(_decoded(w, "induction"), h.scores("induction"), atol=1 / 255, rtol=0)
    torch.testing.assert_close(_decoded(w, "prev_token"), h.scores("prev_token"), atol=1 / 255, rtol=0)
    torch.testing.assert_close(_decoded(w, "loss_repeated"), torch.tensor(h.loss_repeated), atol=4e-3, rtol=0)
    pats = _decoded(w, "patterns")  # [snapshot, layer, head, query, key]
    torch.testing.assert_close(pats, torch.stack(h.patterns).float(), atol=1 / 255, rtol=0)
    assert w._data["phase"] == {"induction_crosses_half": 30, "fastest_loss_drop": 30}


def test_scores_follow_the_step_and_head_traits():
    w = TrainingScrubber(fake_history(), step=20, layer=1, head=2)
    assert w.scores()["induction"] == pytest.approx(0.05)
    w.step = 30
    assert w.scores()["induction"] == pytest.approx(0.9) and w.snapshot == 3
    w.layer, w.head = 0, 1
    assert w.scores()["prev_token"] == pytest.approx(0.85)
    assert "step=30, L0H1" in repr(w)


@pytest.mark.parametrize("trait, value, message", [
    ("step", 25, r"recorded step, 0\.\.50 \(every 10 steps"),
    ("step", 60, "recorded step"),
    ("step", -10, "recorded step"),
    ("layer", 2, r"layer must be in 0\.\.1"),
    ("head", 3, r"head must be in 0\.\.2"),
])
def test_out_of_range_selection_is_refused_and_the_traits_stay(trait, value, message):
    w = TrainingScrubber(fake_history(), step=20, layer=1, head=2)
    with pytest.raises(traitlets.TraitError, match=message):
        setattr(w, trait, value)
    assert (w.step, w.layer, w.head) == (20, 1, 2)


def test_constructor_refuses_a_bad_step():
    with pytest.raises(traitlets.TraitError, match="recorded step"):
        TrainingScrubber(fake_history(), step=7)


def test_empty_history_is_a_clear_error_unless_live():
    with pytest.raises(ValueError, match="no snapshots"):
        TrainingScrubber(TrainingHistory(finished=True))
    w = TrainingScrubber(TrainingHistory(meta={"model": "x"}), live=True)
    assert w._data["n"] == 0 and "waiting" in repr(w)


def test_not_a_history_is_a_type_error():
    with pytest.raises(TypeError, match="TrainingHistory"):
        TrainingScrubber({"steps": [0]})
    with pytest.raises(TypeError, match="unexpected keyword argument 'stpe'.*'step'"):
        TrainingScrubber(fake_history(), stpe=10)


def test_history_from_another_model_is_refused_and_the_view_is_unchanged():
    w = TrainingScrubber(fake_history(), step=20, layer=1, head=2)
    other = fake_history()
    other.meta = {**other.meta, "n_heads": 4}
    other.prev_token = [torch.zeros(2, 4) for _ in other.steps]
    other.induction = [torch.zeros(2, 4) for _ in other.steps]
    other.patterns = [torch.zeros(2, 4, 7, 7).half() for _ in other.steps]
    before = dict(w._data)
    with pytest.raises(ValueError, match="2 layers x 4 heads; the view shows 2 x 3"):
        w.update(other)
    assert w._data == before and (w.step, w.layer, w.head) == (20, 1, 2)


def test_damaged_history_is_refused():
    h = fake_history()
    h.patterns[2] = torch.zeros(2, 3, 5, 5).half()
    with pytest.raises(ValueError, match="damaged"):
        TrainingScrubber(h)


def test_follows_a_run_in_progress():
    full = fake_history()
    live = TrainingHistory(meta=dict(full.meta), probe_ids=full.probe_ids, probe_tokens=full.probe_tokens,
                           probe_half_len=full.probe_half_len)
    w = TrainingScrubber(live)  # not finished: follows it
    assert w._data["n"] == 0
    for i, step in enumerate(full.steps):
        live.steps.append(step)
        for name in ("loss_plain", "loss_repeated", "prev_token", "induction", "patterns"):
            getattr(live, name).append(getattr(full, name)[i])
        live._notify()
        assert w._data["n"] == i + 1 and w.step == step  # stays at the newest step while it was there
    w.step = 20
    live.steps.append(60)
    for name in ("loss_plain", "loss_repeated", "prev_token", "induction", "patterns"):
        getattr(live, name).append(getattr(full, name)[-1])
    live._notify()
    assert w._data["n"] == 7 and w.step == 20  # a learner who scrubbed back is not moved


def test_save_load_round_trip(tmp_path):
    h = fake_history()
    h.weights = {10: {"w": torch.arange(6.0).reshape(2, 3)}}
    path = h.save(tmp_path / "h.safetensors")
    back = TrainingHistory.load(path)
    assert back.steps == h.steps and back.probe_tokens == h.probe_tokens and back.meta == h.meta
    torch.testing.assert_close(back.scores("induction"), h.scores("induction"))
    assert torch.equal(back.weights[10]["w"], h.weights[10]["w"])
    with pytest.raises(ValueError, match="empty history"):
        TrainingHistory().save(tmp_path / "e.safetensors")


def test_to_html_is_one_offline_page_with_hostile_tokens_escaped():
    tokens = ["<|bos|>", "<script>alert(1)</script>", "&amp;", "</script>", "<script>alert(1)</script>", "&amp;",
              "</script>"]
    html = TrainingScrubber(fake_history(tokens=tokens)).to_html()
    assert "<script>alert(1)</script>" not in html and "http://" not in html.replace("http://www.w3.org", "")


def test_a_dashboard_links_scrubbers_by_step_and_heads_with_an_attention_viewer():
    import json
    import re

    from widget_fakes import FakeTrace

    from kit.widgets import AttentionViewer, Dashboard

    a, b = TrainingScrubber(fake_history(), step=20), TrainingScrubber(fake_history(), step=50, layer=1, head=2)
    viewer = AttentionViewer(FakeTrace([["a", "b", "c"]], n_layers=2, n_heads=3))
    d = Dashboard(a, b, viewer)
    assert d.links == [("TrainingScrubber#0", "layer", "TrainingScrubber#1"),
                       ("TrainingScrubber#0", "layer", "AttentionViewer#2"),
                       ("TrainingScrubber#0", "head", "TrainingScrubber#1"),
                       ("TrainingScrubber#0", "head", "AttentionViewer#2"),
                       ("TrainingScrubber#0", "step", "TrainingScrubber#1")]
    assert (b.step, b.layer, b.head) == (20, 0, 0)  # the first view's selection, at once
    # the links are jslinks (in the browser); the static page carries the step link too
    assert ("step" in {x.source[1] for x in d._jslinks}) and len(d._jslinks) == 5
    page = d.to_html()
    links = json.loads(re.search(r'<script type="application/vnd.tmk.links\+json">(.*?)</script>', page).group(1))
    assert [t for _, t, _ in links] == ["layer", "layer", "head", "head", "step"]


def test_scrubbers_of_runs_with_other_steps_are_not_step_linked_silently():
    a, b = TrainingScrubber(fake_history()), TrainingScrubber(fake_history(steps=[0, 10, 20, 30, 40]))
    from kit.widgets import Dashboard

    with pytest.raises(ValueError, match=r"^cannot link 'step': the views disagree on its range \(TrainingScrubber #0: "
                                         r"steps 0\.\.50 \(6 recorded\), TrainingScrubber #1: steps 0\.\.40 \(5 recorded\)\)"):
        Dashboard(a, b)
    d = Dashboard(a, b, link=["layer", "head"])
    assert {t for _, t, _ in d.links} == {"layer", "head"} and (a.step, b.step) == (50, 40)
    # same steps, other values: linked (the range is the recorded steps, not their count)
    c = TrainingScrubber(fake_history(steps=[0, 10, 20, 30, 40, 60]))
    with pytest.raises(ValueError, match="cannot link 'step'"):
        Dashboard(a, c)


def test_an_empty_live_scrubber_is_left_out_of_the_step_link():
    from kit.widgets import Dashboard

    live = TrainingScrubber(TrainingHistory(), live=True)
    d = Dashboard(TrainingScrubber(fake_history()), live)
    assert d.links == []
