// The texts as rows of token chips shaded by the unit's activation; keyboard: arrows move a
// cursor (left/right within a text, up/down between texts), Enter selects, Escape clears.
import { h, num, scrollWithin } from "../shared/dom.js";
import { divergingColor, textOn } from "../shared/colors.js";
import { visibleToken } from "../shared/tokens.js";

/** Returns {node, paint(values, vmax, theme), mark(text, token), reveal(text, token)}. */
export function createTexts({ texts, onHover, onSelect, onClear }) {
  const chips = texts.map((tokens, t) => tokens.map((tok, p) =>
    h("span", { class: "tmk-tok tmk-chip", text: visibleToken(tok), attrs: { "data-text": t, "data-pos": p } })));
  const rows = chips.map((row, t) => h("div", { class: "tmk-text-row" }, [
    h("span", { class: "tmk-text-no", text: String(t) }),
    h("span", { class: "tmk-text-body" }, row),
  ]));
  const node = h("div", { class: "tmk-texts", attrs: { tabindex: 0, role: "region", "aria-label": "Texts, each token shaded by the activation. Arrow keys move, Enter selects a token, Escape clears." } }, rows);
  const cursor = { t: 0, p: -1 };
  let locked = null;

  const chipOf = (event) => {
    const chip = event.target.closest?.(".tmk-chip");
    return chip && node.contains(chip) ? [Number(chip.dataset.text), Number(chip.dataset.pos)] : null;
  };
  node.addEventListener("mouseover", (event) => {
    const at = chipOf(event);
    if (at) onHover(...at);
  });
  node.addEventListener("mouseleave", () => onHover(-1, -1));
  node.addEventListener("click", (event) => {
    const at = chipOf(event);
    if (at) onSelect(...at);
  });
  const moveCursor = (t, p) => {
    chips[cursor.t]?.[cursor.p]?.classList.remove("tmk-cursor");
    cursor.t = Math.max(0, Math.min(texts.length - 1, t));
    cursor.p = Math.max(0, Math.min(texts[cursor.t].length - 1, p));
    const chip = chips[cursor.t][cursor.p];
    chip.classList.add("tmk-cursor");
    scrollWithin(node, chip);
    onHover(cursor.t, cursor.p);
  };
  node.addEventListener("keydown", (event) => {
    const { t, p } = cursor;
    if (event.key === "ArrowRight") moveCursor(t, p + 1);
    else if (event.key === "ArrowLeft") moveCursor(t, p - 1);
    else if (event.key === "ArrowDown") moveCursor(t + 1, Math.max(0, p));
    else if (event.key === "ArrowUp") moveCursor(t - 1, Math.max(0, p));
    else if (event.key === "Home") moveCursor(t, 0);
    else if (event.key === "End") moveCursor(t, texts[t].length - 1);
    else if (event.key === "Enter" || event.key === " ") { if (p >= 0) onSelect(t, p); }
    else if (event.key === "Escape") onClear();
    else return;
    event.preventDefault();
  });

  return {
    node,
    /** Shade every chip: `value(t, p)` on a diverging scale up to vmax. */
    paint(value, vmax, theme) {
      chips.forEach((row, t) => row.forEach((chip, p) => {
        const v = value(t, p);
        const rgb = divergingColor(theme, v / vmax);
        chip.style.background = `rgb(${rgb.join(",")})`;
        chip.style.color = textOn(rgb);
        chip.title = `text ${t}, position ${p}: ${num(v)}`;
        chip.dataset.act = String(v);
      }));
    },
    mark(t, p) {
      locked?.classList.remove("tmk-locked");
      locked = t >= 0 && p >= 0 ? chips[t]?.[p] ?? null : null;
      locked?.classList.add("tmk-locked");
    },
    reveal(t, p) {
      if (chips[t]?.[p]) scrollWithin(node, chips[t][p]);
    },
  };
}
