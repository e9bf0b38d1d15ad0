// The prompt as a row of token chips: hovering or clicking one shows what it attends to
// (chip background) and what attends to it (underline).
import { h, scrollWithin } from "../shared/dom.js";
import { rampColor, textOn } from "../shared/colors.js";
import { visibleToken } from "../shared/tokens.js";

/** Returns {node, highlight(token, locked, m, theme), reveal(token)}. */
export function createTokenStrip({ tokens, height, onHover, onLock }) {
  const chips = tokens.map((text, i) =>
    h("span", {
      class: "tmk-tok tmk-chip",
      text: visibleToken(text),
      attrs: { "data-pos": i, role: "listitem", title: `position ${i}` },
    }),
  );
  const node = h("div", {
    class: "tmk-strip",
    attrs: { role: "list", "aria-label": "Tokens of the prompt" },
    style: { height: `${height}px` },
  }, chips);
  const posOf = (event) => {
    const chip = event.target.closest?.(".tmk-chip");
    return chip && node.contains(chip) ? Number(chip.dataset.pos) : -1;
  };
  node.addEventListener("mouseover", (event) => {
    const pos = posOf(event);
    if (pos >= 0) onHover(pos);
  });
  node.addEventListener("mouseleave", () => onHover(-1));
  node.addEventListener("click", (event) => {
    const pos = posOf(event);
    if (pos >= 0) onLock(pos);
  });

  let lit = false;
  return {
    node,
    /** Scroll the strip (only the strip) to show `token`. */
    reveal(token) {
      if (chips[token]) scrollWithin(node, chips[token]);
    },
    highlight(token, locked, m, theme) {
      if (token < 0 || !m) {
        if (!lit) return;
        for (const chip of chips) {
          chip.style.background = chip.style.boxShadow = chip.style.color = "";
          chip.classList.remove("tmk-focus", "tmk-locked");
          delete chip.dataset.to;
          delete chip.dataset.from;
        }
        lit = false;
        return;
      }
      lit = true;
      for (let k = 0; k < chips.length; k++) {
        const chip = chips[k];
        const to = m.get(token, k) * m.scale; // token attends to k
        const from = m.get(k, token) * m.scale; // k attends to token
        const rgb = rampColor(theme, to);
        chip.style.background = to > 0 ? `rgb(${rgb.join(",")})` : "";
        chip.style.color = to > 0 ? (textOn(rgb)) : "";
        chip.style.boxShadow = from > 0.02 ? `inset 0 -${Math.max(2, Math.round(from * 5))}px 0 rgba(${theme === "dark" ? "177, 151, 252" : "112, 72, 232"}, ${Math.min(1, 0.25 + from)})` : "";
        chip.dataset.to = to.toFixed(3);
        chip.dataset.from = from.toFixed(3);
        chip.classList.toggle("tmk-focus", k === token && !locked);
        chip.classList.toggle("tmk-locked", k === token && locked);
      }
    },
  };
}
