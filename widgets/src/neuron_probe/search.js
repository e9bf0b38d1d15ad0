// Search neurons (or features) by the tokens they promote: a text box with a result listbox.
import { h } from "../shared/dom.js";
import { visibleToken } from "../shared/tokens.js";

const LIMIT = 50;

/**
 * `getDecoded()` -> {units, k, get(unit, i) -> token text} or null; `onPick(unit)`.
 * Returns {node, input, refresh()}.
 */
export function createSearch({ uid, getDecoded, onPick, label }) {
  const input = h("input", { attrs: { type: "search", placeholder: "search by token\u2026", "aria-label": label, "aria-controls": `${uid}-results`, "aria-autocomplete": "list", role: "combobox", "aria-expanded": "false" } });
  const list = h("ul", { class: "tmk-results", attrs: { id: `${uid}-results`, role: "listbox", "aria-label": "Matching units" } });
  list.hidden = true;
  let active = -1;
  let items = [];

  function setActive(i) {
    active = i;
    items.forEach((li, j) => li.setAttribute("aria-selected", String(j === i)));
    if (items[i]) {
      input.setAttribute("aria-activedescendant", items[i].id);
      items[i].scrollIntoView?.({ block: "nearest" });
    }
  }

  function run() {
    const query = input.value.toLowerCase();
    const decoded = getDecoded();
    items = [];
    if (!query.trim() || !decoded) {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      list.replaceChildren();
      return;
    }
    const hits = [];
    for (let u = 0; u < decoded.units; u++) {
      for (let i = 0; i < decoded.k; i++) {
        if (decoded.get(u, i).toLowerCase().includes(query)) {
          hits.push([i, u]);
          break;
        }
      }
    }
    hits.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    items = hits.slice(0, LIMIT).map(([, u], j) => {
      const tops = [];
      for (let i = 0; i < Math.min(4, decoded.k); i++) tops.push(visibleToken(decoded.get(u, i)));
      const li = h("li", { attrs: { role: "option", id: `${uid}-opt-${j}`, "data-unit": u, "aria-selected": "false" } }, [
        h("b", { text: `#${u}` }), " ", h("span", { class: "tmk-tok", text: tops.join("  ") }),
      ]);
      li.addEventListener("mousedown", (event) => {
        event.preventDefault(); // keep the focus in the box
        pick(u);
      });
      return li;
    });
    list.replaceChildren(...(items.length ? items : [h("li", { class: "tmk-note", text: "no unit promotes such a token", attrs: { role: "option", "aria-disabled": "true" } })]));
    list.hidden = false;
    list.dataset.count = String(items.length);
    input.setAttribute("aria-expanded", "true");
    setActive(items.length ? 0 : -1);
  }

  function pick(u) {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    onPick(u);
  }

  let timer = 0;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(run, 120);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" && items.length) setActive(Math.min(items.length - 1, active + 1));
    else if (event.key === "ArrowUp" && items.length) setActive(Math.max(0, active - 1));
    else if (event.key === "Enter") {
      clearTimeout(timer);
      if (list.hidden) run();
      if (items[active]) pick(Number(items[active].dataset.unit));
    } else if (event.key === "Escape") {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
    } else return;
    event.preventDefault();
  });
  input.addEventListener("blur", () => { list.hidden = true; });
  return { node: h("span", { class: "tmk-search-wrap" }, [input, list]), input, refresh: () => { if (!list.hidden) run(); } };
}
