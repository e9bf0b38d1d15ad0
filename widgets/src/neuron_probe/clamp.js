// The clamp control: a checkbox and a slider over fixed multiples of the unit's largest
// |activation|, and the next-token probabilities before and after, computed in Python.
import { h, num } from "../shared/dom.js";
import { visibleToken } from "../shared/tokens.js";

const SHOWN = 8;

/** Returns {node, set(multiple|null), showResult(result|null, note), setUnitMax(m), setPrompt(tokens)}. */
export function createClamp({ uid, multiples, onChange }) {
  const zero = multiples.indexOf(0);
  const check = h("input", { attrs: { type: "checkbox", id: `${uid}-clamp-on` } });
  const slider = h("input", { attrs: { type: "range", min: 0, max: multiples.length - 1, step: 1, value: zero, id: `${uid}-clamp`, "aria-label": "Clamp value, in units of the largest activation" } });
  const valueText = h("span", { class: "tmk-clamp-value", attrs: { "aria-live": "polite" } });
  const promptText = h("div", { class: "tmk-desc" });
  const body = h("div", { class: "tmk-clamp-result" });
  const node = h("div", { class: "tmk-clamp" }, [
    h("h4", { text: "Clamp and rerun" }),
    h("div", { class: "tmk-clamp-row" }, [h("label", { attrs: { for: `${uid}-clamp-on` } }, [check, "clamp"]), slider, valueText]),
    promptText,
    body,
  ]);
  let unitMax = 1;

  const describe = () => {
    const m = multiples[Number(slider.value)];
    valueText.textContent = check.checked ? `\u00d7${m} of max |act| = ${num(m * unitMax)}` : "off (the model as it is)";
    slider.disabled = !check.checked;
  };
  const emit = () => {
    describe();
    onChange(check.checked ? multiples[Number(slider.value)] : null);
  };
  slider.addEventListener("input", describe);
  slider.addEventListener("change", emit);
  check.addEventListener("change", emit);

  return {
    node,
    slider,
    check,
    set(m) {
      check.checked = m !== null && m !== undefined;
      if (check.checked) {
        let best = 0;
        multiples.forEach((x, i) => { if (Math.abs(x - m) < Math.abs(multiples[best] - m)) best = i; });
        slider.value = String(best);
      }
      describe();
      if (check.checked && multiples[Number(slider.value)] !== m) valueText.textContent = `\u00d7${m} of max |act| = ${num(m * unitMax)}`;
    },
    setUnitMax(m) {
      unitMax = m;
      describe();
    },
    setPrompt(tokens) {
      const tail = tokens.slice(-8).map(visibleToken).join("");
      promptText.textContent = `Next token after \u00ab${tokens.length > 8 ? "\u2026" : ""}${tail}\u00bb`;
    },
    showResult(result, note = "") {
      if (!result) {
        body.replaceChildren(h("div", { class: "tmk-note", text: note }));
        return;
      }
      const { tokens, values, kl, value } = result;
      const rows = [];
      const n = Math.min(SHOWN, tokens.length);
      const top = Math.max(1e-9, ...Array.from({ length: n }, (_, i) => Math.max(values[i * 2], values[i * 2 + 1])));
      for (let i = 0; i < n; i++) {
        const before = values[i * 2];
        const after = values[i * 2 + 1];
        const d = after - before;
        rows.push(h("tr", { attrs: { "data-token": tokens[i] } }, [
          h("td", { class: "tmk-tok", text: visibleToken(tokens[i]) }),
          h("td", { class: "tmk-num", text: num(before) }),
          h("td", { class: "tmk-num tmk-after", text: num(after) }),
          h("td", { class: "tmk-num", text: `${d >= 0 ? "+" : ""}${num(d)}` }),
          h("td", { class: "tmk-bar-cell" }, [h("span", { class: "tmk-pbar", style: { width: `${(after / top) * 100}%`, background: d >= 0 ? "var(--tmk-accent-2)" : "var(--tmk-accent)" } })]),
        ]));
      }
      body.replaceChildren(
        h("table", { class: "tmk-next" }, [
          h("thead", {}, [h("tr", {}, ["token", "before", "after", "change", "after (bar)"].map((t) => h("th", { text: t, attrs: { scope: "col" } })))]),
          h("tbody", {}, rows),
        ]),
        h("div", { class: "tmk-desc", text: `clamped to ${num(value)} \u00b7 KL(after \u2016 before) = ${num(kl)}` }),
      );
    },
  };
}
