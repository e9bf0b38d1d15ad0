// Residual-stream norms by layer at one position, as small vertical bars.
import { h, num } from "../shared/dom.js";

/** `rows`: labels ("embed", "L0", ...). Returns {node, update(values, pos, label)}. */
export function createNorms(rows) {
  const n = rows.length;
  const barW = Math.max(4, Math.min(18, Math.floor(300 / n) - 2));
  const title = h("div", { class: "tmk-norms-title" });
  const bars = rows.map((label) => h("span", { class: "tmk-norm-bar", attrs: { "data-row": label } }));
  const every = Math.ceil(n / 14);
  const labels = rows.map((label, i) => h("span", { class: "tmk-norm-label", text: i % every === 0 || i === n - 1 ? label.replace("embed", "E").replace(/^L/, "") : "", style: { width: `${barW}px` } }));
  const chart = h("div", { class: "tmk-norms-chart", attrs: { "aria-hidden": "true" } }, bars.map((b) => h("span", { class: "tmk-norm-slot", style: { width: `${barW}px` } }, [b])));
  const axis = h("div", { class: "tmk-norms-axis", attrs: { "aria-hidden": "true" } }, labels);
  const list = h("ul", { class: "tmk-sr-only" });
  const node = h("div", { class: "tmk-norms" }, [title, chart, axis, list]);
  return {
    node,
    update(values, label) {
      const top = Math.max(...values, 1e-12);
      title.textContent = `\u2016resid\u2016 entering layer 0 (E) and after each layer, at ${label}`;
      values.forEach((v, i) => {
        bars[i].style.height = `${Math.max(1, (v / top) * 100)}%`;
        bars[i].title = `${rows[i]}: ${num(v)}`;
        bars[i].dataset.value = String(v);
      });
      list.replaceChildren(...values.map((v, i) => h("li", { text: `${rows[i]}: ${num(v)}` })));
    },
  };
}
