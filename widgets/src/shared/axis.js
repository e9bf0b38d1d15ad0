// Token labels along the top of a cell grid: rotated when columns are narrow or tokens long.
import { visibleToken, shortToken } from "./tokens.js";

/**
 * A column header of tokens for createCellGrid. Options: tokens, cellW, `mark(c)` -> "" or a
 * suffix such as "*", `accent2(c)` -> bool (colour the label with the second accent), `below` ->
 * optional {height, text(c) -> string|null} for a second line (e.g. corrupted tokens),
 * `selected()` -> the highlighted column. Returns {height, draw(ctx, c, x, w, hh, colors)}.
 */
export function tokenHeader({ tokens, cellW, mark = () => "", accent2 = () => false, below = null, selected = () => -1 }) {
  const longest = Math.max(1, ...tokens.map((t) => Math.min(14, [...visibleToken(t)].length)));
  const rotated = cellW < 7 * (longest + 1) + 4;
  const band = below ? below.height : 0;
  const height = (rotated ? Math.round(Math.min(80, 16 + (longest + 1) * 6.6 * 0.87)) : 22) + band;
  return {
    height,
    rotated,
    draw(ctx, c, x, w, hh, colors) {
      const isSel = selected() === c;
      const text = shortToken(tokens[c], rotated ? 14 : Math.max(2, Math.floor(w / 7))) + mark(c);
      ctx.fillStyle = isSel ? colors.accent : accent2(c) ? colors.accent2 : colors.fg;
      ctx.font = `${isSel ? "bold " : ""}11px ${colors.mono || "monospace"}`;
      const base = hh - band - 5;
      if (rotated) {
        ctx.save();
        ctx.translate(x + w / 2 + 3, base);
        ctx.rotate(-Math.PI / 3);
        ctx.textAlign = "left";
        ctx.textBaseline = "middle";
        ctx.fillText(text, 0, 0);
        ctx.restore();
      } else {
        ctx.textAlign = "center";
        ctx.textBaseline = "alphabetic";
        ctx.fillText(text, x + w / 2, base);
      }
      const second = below?.text(c);
      if (second) {
        ctx.fillStyle = colors.accent;
        ctx.font = `10px ${colors.mono || "monospace"}`;
        ctx.textAlign = "center";
        ctx.textBaseline = "alphabetic";
        ctx.fillText(w >= 24 ? shortToken(second, Math.max(2, Math.floor(w / 6.5))) : "\u2260", x + w / 2, hh - 4);
      }
    },
  };
}
