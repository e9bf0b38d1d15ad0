"""Token text made visible: the Python twin of ``widgets/src/shared/tokens.js``.

Spaces show as ``·``, newlines as ``↵``, tabs as ``→``, carriage returns as ``␍``; other control
characters, bidirectional controls, zero-width spaces and byte-order marks as ``⟨U+XXXX⟩``; the
empty token as ``∅``. Used for text reprs; a browser test checks both twins agree.
"""

from __future__ import annotations

import re

__all__ = ["visible_token"]

_GLYPHS = {" ": "\u00b7", "\n": "\u21b5", "\t": "\u2192", "\r": "\u240d"}
_INVISIBLE = re.compile("[\u0000-\u001f\u007f-\u009f\u061c\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff ]")


def _show(match: re.Match[str]) -> str:
    ch = match.group(0)
    return _GLYPHS.get(ch) or f"\u27e8U+{ord(ch):04X}\u27e9"


def visible_token(text: str) -> str:
    """The text a widget displays for one token."""
    return _INVISIBLE.sub(_show, text) if text else "\u2205"
