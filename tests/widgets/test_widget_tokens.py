"""Visible token text (kit/widgets/_tokens.py)."""

import pytest

from kit.widgets._tokens import visible_token


@pytest.mark.parametrize(
    "text, shown",
    [
        (" cat", "\u00b7cat"),
        ("a\nb", "a\u21b5b"),
        ("\t", "\u2192"),
        ("\r\n", "\u240d\u21b5"),
        ("\u202eevil", "\u27e8U+202E\u27e9evil"),
        ("x\u200by", "x\u27e8U+200B\u27e9y"),
        ("\x00", "\u27e8U+0000\u27e9"),
        ("", "\u2205"),
        ("<b>&amp;</b>", "<b>&amp;</b>"),
        ("\U0001f642", "\U0001f642"),
        ("\u05e9\u05dc\u05d5\u05dd", "\u05e9\u05dc\u05d5\u05dd"),
    ],
    ids=["space", "newline", "tab", "crlf", "bidi-override", "zero-width-space", "nul", "empty", "html", "emoji",
         "hebrew"],
)
def test_visible_token(text, shown):
    assert visible_token(text) == shown
