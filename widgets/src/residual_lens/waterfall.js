// Direct logit attribution as a waterfall: the embeddings, each layer's attention (expandable
// into heads and the output bias) and MLP, and the final biases step from 0 to the logit.
import { h, num } from "../shared/dom.js";
import { divergingCss } from "../shared/colors.js";

/**
 * Options: nLayers, nHeads, onHead(layer, head), onLayer(layer). `values` (update) is the flat
 * vector [embed, heads[layer, head], attn_bias[layer], mlps[layer], bias, total].
 * Returns {node, update(values, theme), setSelected(layer, head), expand(layer, open)}.
 */
export function createWaterfall({ nLayers, nHeads, onHead, onLayer }) {
  const list = h("div", { class: "tmk-wf-list", attrs: { role: "list", "aria-label": "Direct logit attribution, step by step" } });
  const node = h("div", { class: "tmk-wf" }, [list]);
  const expanded = new Set();
  let last = null;
  let selected = { layer: -1, head: -1 };

  const parts = (v) => {
    const H = nHeads;
    const heads = (l, hd) => v[1 + l * H + hd];
    const attnBias = (l) => v[1 + nLayers * H + l];
    const mlp = (l) => v[1 + nLayers * H + nLayers + l];
    const bias = v[1 + nLayers * H + 2 * nLayers];
    const total = v[2 + nLayers * H + 2 * nLayers];
    return { embed: v[0], heads, attnBias, mlp, bias, total };
  };

  /** The rows: {kind, label, value, start, end, layer?, head?}. */
  function rows(v) {
    const p = parts(v);
    const out = [];
    let cum = 0;
    const step = (row) => {
      out.push({ ...row, start: cum, end: cum + row.value });
      cum += row.value;
    };
    step({ kind: "embed", label: "embeddings", value: p.embed });
    for (let l = 0; l < nLayers; l++) {
      let attn = p.attnBias(l);
      for (let hd = 0; hd < nHeads; hd++) attn += p.heads(l, hd);
      if (expanded.has(l)) {
        out.push({ kind: "attn", label: `L${l} attention`, value: attn, start: cum, end: cum + attn, layer: l, open: true });
        for (let hd = 0; hd < nHeads; hd++) step({ kind: "head", label: `L${l}.H${hd}`, value: p.heads(l, hd), layer: l, head: hd });
        step({ kind: "bias", label: `L${l} attn bias`, value: p.attnBias(l), layer: l });
      } else {
        step({ kind: "attn", label: `L${l} attention`, value: attn, layer: l, open: false });
      }
      step({ kind: "mlp", label: `L${l} MLP`, value: p.mlp(l), layer: l });
    }
    step({ kind: "bias", label: "final biases", value: p.bias });
    out.push({ kind: "total", label: "logit", value: p.total, start: 0, end: p.total });
    return out;
  }

  function render(theme) {
    if (!last) return;
    const all = rows(last);
    let lo = 0;
    let hi = 0;
    for (const r of all) {
      lo = Math.min(lo, r.start, r.end);
      hi = Math.max(hi, r.start, r.end);
    }
    const span = hi - lo || 1;
    const pct = (x) => `${(((x - lo) / span) * 100).toFixed(3)}%`;
    const items = all.map((r) => {
      const left = Math.min(r.start, r.end);
      const color = r.kind === "total" ? "var(--tmk-accent)" : divergingCss(theme, r.value >= 0 ? 0.75 : -0.75);
      const track = h("span", { class: "tmk-wf-track" }, [
        h("span", { class: "tmk-wf-zero", style: { left: pct(0) } }),
        h("span", { class: "tmk-wf-bar", style: { left: pct(left), width: `${((Math.abs(r.value) / span) * 100).toFixed(3)}%`, background: color } }),
      ]);
      const label = h("span", { class: "tmk-wf-label", text: (r.kind === "attn" ? (r.open ? "\u25be " : "\u25b8 ") : "") + r.label });
      const value = h("span", { class: "tmk-wf-value", text: (r.value >= 0 && r.kind !== "total" ? "+" : "") + num(r.value) });
      const clickable = r.kind === "attn" || r.kind === "head" || r.kind === "mlp";
      const row = h(clickable ? "button" : "div", {
        class: `tmk-wf-row tmk-wf-${r.kind}`,
        attrs: { role: "listitem", "data-kind": r.kind, "data-value": r.value, ...(r.layer !== undefined ? { "data-layer": r.layer } : {}), ...(r.head !== undefined ? { "data-head": r.head } : {}) },
      }, [label, track, value]);
      if (clickable) row.type = "button";
      if (r.kind === "attn") {
        row.setAttribute("aria-expanded", String(Boolean(r.open)));
        row.title = `${r.open ? "Collapse" : "Expand"} layer ${r.layer}'s attention into its heads`;
        row.addEventListener("click", () => {
          api.expand(r.layer, !expanded.has(r.layer));
          list.querySelector(`.tmk-wf-attn[data-layer="${r.layer}"]`)?.focus(); // the row was re-made
        });
      } else if (r.kind === "head") {
        row.setAttribute("aria-pressed", String(selected.layer === r.layer && selected.head === r.head));
        row.title = `Select layer ${r.layer}, head ${r.head}`;
        row.addEventListener("click", () => onHead(r.layer, r.head));
      } else if (r.kind === "mlp") {
        row.title = `Select layer ${r.layer}`;
        row.addEventListener("click", () => onLayer(r.layer));
      }
      row.setAttribute("aria-label", `${r.label}: ${num(r.value)}${r.kind === "total" ? "" : `, running total ${num(r.end)}`}`);
      return row;
    });
    const keepScroll = list.scrollTop;
    list.replaceChildren(...items);
    list.scrollTop = keepScroll;
  }

  let theme = "light";
  const api = {
    node,
    update(values, t) {
      last = values;
      theme = t;
      render(theme);
    },
    repaint(t) {
      theme = t;
      render(theme);
    },
    setSelected(layer, head) {
      selected = { layer, head };
      for (const row of list.querySelectorAll(".tmk-wf-head"))
        row.setAttribute("aria-pressed", String(Number(row.dataset.layer) === layer && Number(row.dataset.head) === head));
    },
    expand(layer, open) {
      if (open) expanded.add(layer);
      else expanded.delete(layer);
      node.dataset.expanded = [...expanded].sort((a, b) => a - b).join(",");
      render(theme);
    },
  };
  return api;
}
