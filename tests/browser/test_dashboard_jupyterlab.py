"""End to end in JupyterLab with a live kernel: a Dashboard of a ResidualLens and a NeuronProbe.

A click in the lens moves the probe's layer (jslink in the browser) and the kernel sees both;
moving the probe's clamp slider makes Python rerun the model; a second cell then prints the
clamped probability, which must be the one computed here independently. Skips without
JupyterLab or its anywidget extension. Slow: about 30-60 s.
"""

from __future__ import annotations

import re
import time

import pytest
from browser_helpers import grid_cell_point
from jupyter_helpers import REPO, RUN_CELL, jupyterlab_server, open_lab

from kit.widgets import NeuronProbe
from kit.widgets._probe import CLAMP_MULTIPLES

PROMPT = "The cat sat on the mat"
TEXTS = [PROMPT, "Once upon a time there was a model."]
NEURON = 3

SETUP = """\
import sys
sys.path[:0] = [{repo!r}]
import kit
from kit.widgets import Dashboard, NeuronProbe, ResidualLens

model = kit.load({model!r}, device="cpu")
lens = ResidualLens(model, {prompt!r})
probe = NeuronProbe(model, {texts!r}, layer=0, neuron={neuron})
log = open({log!r}, "a")

def on_change(change):
    log.write(f"{{type(change['owner']).__name__}}.{{change['name']}}={{change['new']}}\\n")
    log.flush()

lens.observe(on_change, names=["layer", "token"])
probe.observe(on_change, names=["layer", "clamp"])
Dashboard(lens, probe)
"""

READ = """print(f"clamp={{probe.clamp}} layer={{probe.layer}} p={{probe.prob({tid})[1]:.6e}}")"""


def wait_for_log(log, line, page, timeout=30):
    deadline = time.monotonic() + timeout
    while line not in (log.read_text().split() if log.exists() else []):
        if time.monotonic() > deadline:
            raise AssertionError(f"{line!r} never reached the kernel; log: {log.read_text() if log.exists() else ''}")
        page.wait_for_timeout(100)


def output_of(page, index):
    return page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea-output").last


def test_linked_views_and_the_clamp_round_trip_through_python(browser, tiny_dirs, tiny_models, tmp_path):
    model = tiny_models["gpt2"]
    tid = int(model.trace(PROMPT, capture=[]).logits[0, -1].argmax())
    expected = NeuronProbe(model, TEXTS, layer=2, neuron=NEURON, clamp=CLAMP_MULTIPLES[-1])
    before, after = expected.prob(tid)
    assert f"{after:.6e}" != f"{before:.6e}", "pick a neuron whose clamp changes the top token"
    log = tmp_path / "changes.log"
    setup = SETUP.format(
        repo=str(REPO), model=str(tiny_dirs["gpt2"]), prompt=PROMPT, texts=TEXTS, neuron=NEURON, log=str(log)
    )
    with jupyterlab_server(tmp_path, [setup, READ.format(tid=tid)]) as (url, base):
        context, page, errors = open_lab(browser, url, base)
        try:
            page.evaluate(RUN_CELL, 0)
            roots = page.locator(".jp-OutputArea .tmk-root")
            for i in range(2):
                roots.nth(i).and_(page.locator('[data-ready="1"]')).wait_for(timeout=120_000)
            lens, probe = roots.nth(0), roots.nth(1)
            # a click in the lens: the probe follows in the browser, the kernel sees both
            grid = lens.locator(".tmk-cellgrid")
            grid.click(position=grid_cell_point(grid, 2, 1))
            probe.and_(page.locator(f'[data-layer="2"][data-loaded="neuron/2/{NEURON}"]')).wait_for(timeout=30_000)
            wait_for_log(log, "ResidualLens.layer=2", page)
            wait_for_log(log, "NeuronProbe.layer=2", page)
            wait_for_log(log, "ResidualLens.token=1", page)
            # the clamp slider: Python reruns the model and the view shows the result
            probe.locator('input[type="checkbox"]').check()
            slider = probe.locator('input[type="range"]')
            slider.focus()
            slider.press("End")
            shown = f"clamp/neuron/2/{NEURON}/{CLAMP_MULTIPLES[-1]:g}"
            probe.and_(page.locator(f'[data-clamp-shown="{shown}"]')).wait_for(timeout=60_000)
            wait_for_log(log, f"NeuronProbe.clamp={CLAMP_MULTIPLES[-1]}", page)
            # a Python cell prints the clamped probability
            page.evaluate(RUN_CELL, 1)
            out = output_of(page, 1)
            out.wait_for(timeout=60_000)
            text = out.text_content()
            m = re.search(r"clamp=([\d.]+) layer=(\d) p=(\S+)", text)
            assert m, text
            assert float(m.group(1)) == CLAMP_MULTIPLES[-1] and m.group(2) == "2"
            assert float(m.group(3)) == pytest.approx(after, rel=1e-4)
            assert float(m.group(3)) != pytest.approx(before, rel=1e-4)
            assert [e for e in errors if "tmk" in e or "kit" in e] == []
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            raise
        finally:
            context.close()
