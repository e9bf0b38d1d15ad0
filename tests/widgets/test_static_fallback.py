"""A displayed widget carries a text/html fallback for static renderers; the live view stays first."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

import kit
from kit.widgets import AttentionViewer, Dashboard, ResidualLens, set_static_fallback, static_fallback

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def trace():
    return kit.load("facts-4l", device="cpu").trace('The capital of "<script>alert(1)</script>" is')


@pytest.fixture(autouse=True)
def reset_mode(monkeypatch):
    monkeypatch.delenv("KIT_WIDGET_FALLBACK", raising=False)
    yield
    set_static_fallback(None)


def data_of(bundle):
    return bundle[0] if isinstance(bundle, tuple) else bundle


class Frames(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcdocs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "iframe":
            self.srcdocs.append(dict(attrs)["srcdoc"])


def test_default_fallback_is_the_offline_page_beside_the_live_view(trace):
    data = data_of(AttentionViewer(trace)._repr_mimebundle_())
    assert WIDGET_VIEW in data and 'class="tmk-fallback"' in data["text/html"] and "srcdoc=" in data["text/html"]


def test_a_view_over_the_fallback_budget_gets_a_note_that_says_why_and_how(trace, monkeypatch):
    from kit.widgets import _base

    monkeypatch.setattr(_base, "FALLBACK_PAGE_BYTES", 100)
    data = data_of(AttentionViewer(trace)._repr_mimebundle_())
    assert "tmk-fallback-note" in data["text/html"] and "too large" in data["text/html"]
    assert "to_html" in data["text/html"] and "<iframe" not in data["text/html"]


def test_the_note_mode_is_a_short_note_beside_the_live_view(trace):
    set_static_fallback("note")
    data = data_of(AttentionViewer(trace)._repr_mimebundle_())
    assert WIDGET_VIEW in data and "text/plain" in data
    assert "tmk-fallback-note" in data["text/html"] and "to_html" in data["text/html"]
    assert len(data["text/html"]) < 1000


def test_page_fallback_holds_the_widgets_offline_page_in_a_sandboxed_frame(trace):
    set_static_fallback("page")
    viewer = AttentionViewer(trace)
    html = data_of(viewer._repr_mimebundle_())["text/html"]
    parser = Frames()
    parser.feed(html)
    assert len(parser.srcdocs) == 1 and 'sandbox="allow-scripts"' in html
    page = parser.srcdocs[0]  # the attribute decodes back to the whole page
    assert page.startswith("<!doctype html>") and "tmkHost.boot()" in page and "</html>" in page
    assert "<script>alert(1)</script>" not in page  # the token text stays data, inside the page too


def test_dashboard_falls_back_to_its_linked_page(trace):
    set_static_fallback("page")
    board = Dashboard(ResidualLens(trace), AttentionViewer(trace))
    html = data_of(board._repr_mimebundle_())["text/html"]
    parser = Frames()
    parser.feed(html)
    assert "application/vnd.tmk.links+json" in parser.srcdocs[0]


def test_off_leaves_only_the_live_view(trace):
    set_static_fallback("off")
    assert "text/html" not in data_of(AttentionViewer(trace)._repr_mimebundle_())


def test_environment_variable_sets_the_mode(monkeypatch):
    monkeypatch.setenv("KIT_WIDGET_FALLBACK", "page")
    assert static_fallback() == "page"
    set_static_fallback("off")
    assert static_fallback() == "off"


def test_unknown_modes_are_refused_naming_the_valid_ones(monkeypatch):
    with pytest.raises(ValueError, match="note"):
        set_static_fallback("iframe")
    monkeypatch.setenv("KIT_WIDGET_FALLBACK", "everything")
    with pytest.raises(ValueError, match="KIT_WIDGET_FALLBACK"):
        static_fallback()
