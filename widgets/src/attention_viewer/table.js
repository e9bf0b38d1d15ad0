// A table of the selected head for screen readers (and for anyone who wants numbers):
// each query token with the keys it attends to most.
import { h } from "../shared/dom.js";
import { visibleToken } from "../shared/tokens.js";

const TOP = 5;

function topKeys(m, q) {
  const best = [];
  const last = m.tril ? q : m.n - 1;
  for (let k = 0; k <= last; k++) {
    const v = m.get(q, k);
    if (best.length < TOP || v > best[best.length - 1][1]) {
      best.push([k, v]);
      best.sort((a, b) => b[1] - a[1]);
      if (best.length > TOP) best.pop();
    }
  }
  return best;
}

/** Returns {node, update(layer, head, m)}. */
export function createTable(tokens) {
  const caption = h("caption");
  const body = h("tbody");
  const table = h("table", {}, [
    caption,
    h("thead", {}, [h("tr", {}, [
      h("th", { text: "Query token", attrs: { scope: "col" } }),
      h("th", { text: `Keys it attends to most (top ${TOP}, weight)`, attrs: { scope: "col" } }),
    ])]),
    body,
  ]);
  return {
    node: table,
    update(layer, head, m) {
      caption.textContent = `Layer ${layer}, head ${head}: attention of each query token`;
      const rows = tokens.map((text, q) => {
        const keys = topKeys(m, q)
          .filter(([, v]) => v > 0)
          .map(([k, v]) => `${visibleToken(tokens[k])} (${k}) ${(v * m.scale).toFixed(2)}`)
          .join(", ");
        return h("tr", {}, [
          h("th", { attrs: { scope: "row" } }, [h("span", { class: "tmk-tok", text: visibleToken(text) }), ` (${q})`]),
          h("td", { class: "tmk-cell-keys", text: keys || "\u2014" }),
        ]);
      });
      body.replaceChildren(...rows);
    },
  };
}
