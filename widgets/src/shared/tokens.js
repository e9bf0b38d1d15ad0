// Token text made visible: whitespace as glyphs, invisible controls as code points.
// Mirrors kit/widgets/_tokens.py (a browser test checks that both agree).

const GLYPHS = { " ": "\u00b7", "\n": "\u21b5", "\t": "\u2192", "\r": "\u240d" };
// C0/C1 controls, bidi controls, zero-width space, BOM: shown as <U+XXXX>.
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]/gu;

/** The text to display for a token (never interpreted as HTML: callers use textContent). */
export function visibleToken(text) {
  if (text === "") return "\u2205";
  return text.replace(INVISIBLE, (ch) =>
    GLYPHS[ch] ?? `\u27e8U+${ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}\u27e9`,
  ).replace(/ /g, GLYPHS[" "]);
}

/** A short label for axis text: the visible token cut to `max` characters. */
export function shortToken(text, max = 12) {
  const v = [...visibleToken(text)];
  return v.length > max ? v.slice(0, max - 1).join("") + "\u2026" : v.join("");
}
