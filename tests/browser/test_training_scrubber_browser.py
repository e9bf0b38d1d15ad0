"""TrainingScrubber in headless Chromium, from its to_html() page with the network cut off, and live
through the widget protocol."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from browser_helpers import Bridge, canvas_rgb, grid_cell_point

sys.path.insert(0, str(Path(__file__).parent.parent / "widgets"))
from scrubber_fakes import fake_history
from widget_fakes import HOSTILE_TOKENS

from kit.widgets import TrainingScrubber


def test_renders_offline_at_the_last_step_with_the_phase_change_marked(offline):
    o = offline()
    root = o.open(TrainingScrubber(fake_history(), layer=1, head=2).to_html())
    assert o.remote_requests == [] and o.errors == []
    assert root.get_attribute("data-step") == "50" and root.get_attribute("data-phase-step") == "30"
    assert float(root.get_attribute("data-induction-score")) == pytest.approx(0.9, abs=0.005)
    assert root.locator(".tmk-phase").count() == 1
    assert "step 50 of 50" in root.locator(".tmk-step-label").text_content()
    assert "L1H2 previous-token 0.1, induction 0.9" in root.locator(".tmk-readout").text_content()


def test_keyboard_moves_through_the_steps(offline):
    o = offline()
    root = o.open(TrainingScrubber(fake_history(), layer=1, head=2).to_html())
    slider = root.locator('input[type="range"]')
    slider.focus()
    o.page.keyboard.press("Home")
    root.and_(o.page.locator('[data-step="0"]')).wait_for()
    assert float(root.get_attribute("data-induction-score")) == pytest.approx(0.05, abs=0.005)
    for _ in range(3):
        o.page.keyboard.press("ArrowRight")
    root.and_(o.page.locator('[data-step="30"]')).wait_for()
    assert float(root.get_attribute("data-induction-score")) == pytest.approx(0.9, abs=0.005)
    o.page.keyboard.press("End")
    root.and_(o.page.locator('[data-step="50"]')).wait_for()
    assert slider.get_attribute("aria-valuetext") == "step 50"


def test_the_pattern_shows_the_chosen_step(offline):
    o = offline()
    root = o.open(TrainingScrubber(fake_history(), step=0).to_html())
    canvas = root.locator("canvas.tmk-pattern")
    box = canvas.bounding_box()
    cell = box["width"] / 7
    at_first_key = lambda: canvas_rgb(canvas, cell * 0.5, cell * 6.5)  # query 6 -> key 0
    early = at_first_key()  # weight 0.1 on key 0 at snapshot 0
    root.locator('input[type="range"]').focus()
    o.page.keyboard.press("End")
    root.and_(o.page.locator('[data-step="50"]')).wait_for()
    late = at_first_key()  # weight 0.6 at snapshot 5: a darker blue in the light theme
    assert sum(late) < sum(early) - 100, (early, late)


def test_clicking_a_score_cell_chooses_the_head_in_python(offline):
    o = offline()
    w = TrainingScrubber(fake_history(), step=30)
    bridge = Bridge(o, w)
    root = bridge.open()
    bridge.pump(lambda: root.get_attribute("data-ready") == "1")
    grid = root.locator(".tmk-cellgrid").nth(1)  # the induction grid
    grid.click(position=grid_cell_point(grid, 1, 2))
    bridge.pump(lambda: (w.layer, w.head) == (1, 2))
    assert w.scores()["induction"] == pytest.approx(0.9)
    w.step = 10
    bridge.pump(lambda: root.get_attribute("data-step") == "10")
    assert float(root.get_attribute("data-induction-score")) == pytest.approx(0.05, abs=0.005)
    assert o.errors == []


def test_a_click_on_the_loss_chart_picks_the_nearest_step(offline):
    o = offline()
    root = o.open(TrainingScrubber(fake_history()).to_html())
    svg = root.locator("svg.tmk-clickable").first
    box = svg.bounding_box()
    svg.click(position={"x": 34 + (box["width"] - 42) * 0.2 + 1, "y": box["height"] / 2})  # step 10 of 0..50
    root.and_(o.page.locator('[data-step="10"]')).wait_for()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_hostile_token_text_stays_text_in_both_themes(offline, scheme):
    o = offline(color_scheme=scheme)
    tokens = ["<|bos|>", *HOSTILE_TOKENS[:3], *HOSTILE_TOKENS[:3]]
    root = o.open(TrainingScrubber(fake_history(tokens=tokens)).to_html())
    assert o.dialogs == [] and o.errors == []
    assert root.locator("img").count() == 0 and o.page.locator("script:not([type])").count() <= 3
    canvas = root.locator("canvas.tmk-pattern")
    cell = canvas.bounding_box()["width"] / 7
    canvas.hover(position={"x": cell * 1.5, "y": cell * 4.5})  # query 4 -> key 1: both the <script> token
    tip = root.locator(".tmk-tooltip").text_content()
    assert tip.count("<script>alert(1)</script>") == 2, tip  # shown as text
    assert root.get_attribute("data-theme") == scheme
    bg = canvas_rgb(canvas, canvas.bounding_box()["width"] - 3, 3)  # above the diagonal: the zero colour
    assert (min(bg) > 235) if scheme == "light" else (max(bg) < 40), bg


def test_table_view_lists_every_step(offline):
    o = offline()
    root = o.open(TrainingScrubber(fake_history(), layer=1, head=2).to_html())
    rows = root.locator(".tmk-table-view tbody tr")
    assert rows.count() == 6
    assert rows.nth(3).locator("td").all_text_contents()[-1] == "0.9"  # L1H2's induction score at step 30
    assert float(rows.nth(2).locator("td").all_text_contents()[-1]) == pytest.approx(0.05, abs=0.9 / 255)


def test_a_dashboard_keeps_two_scrubbers_on_one_step_offline(offline):
    from kit.widgets import Dashboard

    o = offline()
    roots = o.open(Dashboard(TrainingScrubber(fake_history(), step=0), TrainingScrubber(fake_history())).to_html(),
                   count=2)
    first, second = roots.nth(0), roots.nth(1)
    assert second.get_attribute("data-step") == "0"  # it starts at the first view's step
    first.locator('input[type="range"]').focus()
    for _ in range(3):
        o.page.keyboard.press("ArrowRight")
    second.and_(o.page.locator('[data-step="30"]')).wait_for()
    second.locator('input[type="range"]').focus()
    o.page.keyboard.press("End")
    first.and_(o.page.locator('[data-step="50"]')).wait_for()
    assert o.errors == [] and o.remote_requests == []
