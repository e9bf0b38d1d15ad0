"""The training loop: schedule, determinism, per-step log, chart."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from kit.train import InductionRecipe, TrainConfig, TrainLog, train_induction
from kit.train.loop import lr_at, pick_device


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_warmup_then_cosine():
    cfg = TrainConfig(steps=110, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the cosine
    assert lr_at(110, cfg) == pytest.approx(0.1)
    lrs = [lr_at(s, cfg) for s in range(10, 110)]
    assert all(a >= b for a, b in itertools.pairwise(lrs))


def test_runs_repeat_exactly_for_a_seed_on_cpu(one_thread):
    recipe = InductionRecipe().with_train(steps=25, device="cpu", probe_every=5)
    a, b = train_induction(recipe, progress=False), train_induction(recipe, progress=False)
    assert a.log.rows == b.log.rows
    for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), name
    c = train_induction(recipe.with_train(seed=1), progress=False)
    assert c.log.rows != a.log.rows


def test_log_has_every_step_groups_and_probes(one_thread):
    recipe = InductionRecipe().with_train(steps=12, device="cpu", probe_every=5)
    log = train_induction(recipe, progress=False).log
    assert [r["step"] for r in log.rows] == list(range(1, 13))
    assert all({"loss", "lr", "loss_repeated", "loss_background"} <= set(r) for r in log.rows)
    assert log.series("induction_score")[0] == [1, 5, 10, 12]
    assert log.wall_time_s > 0 and log.meta["cpu_time_s"] > 0 and log.meta["device"] == "cpu"


def test_log_json_round_trip_and_chart():
    rows = [{"step": s, "loss": 4 - s / 1000, "lr": 1e-3, "loss_repeated": 4 - s / 500} for s in range(1, 3001)]
    for r in rows[::10]:
        r["induction_score"] = min(1.0, r["step"] / 2000)
    rows[5]["loss"] = float("nan")
    log = TrainLog(rows=rows, wall_time_s=1.5, meta={"device": "cpu"})
    back = TrainLog.from_json(log.to_json())
    assert back.wall_time_s == 1.5 and back.meta == {"device": "cpu"}
    assert back.rows[0] == rows[0] and math.isnan(back.rows[5]["loss"])
    spec = log.chart(max_points=500).to_dict()
    assert len(spec["vconcat"]) == 2  # losses, then scores
    data = [d for panel in spec["vconcat"] for d in panel["data"]["values"]]
    assert {d["metric"] for d in data} == {"loss", "loss_repeated", "induction_score"}
    assert max(sum(d["metric"] == m for d in data) for m in ("loss", "loss_repeated")) <= 500
    with pytest.raises(KeyError, match="logged"):
        log.series("nope")


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type in {"cpu", "cuda", "mps"}
