// What the panel beside the graph shows for a selected node: its weight, its strongest edges,
// a head's attention pattern, an MLP's top neurons.
import { h, num, hiDpiCanvas } from "../shared/dom.js";
import { matrix } from "../shared/tensor.js";
import { quantisedLut, MASKED } from "../shared/colors.js";
import { visibleToken, shortToken } from "../shared/tokens.js";

/** Draw one head's [query, key] pattern with token labels; returns the canvas. */
function patternCanvas(m, tokens, pos, theme, colors) {
  const n = m.n;
  const labels = n <= 24;
  const left = labels ? 70 : 6;
  const top = labels ? 6 : 6;
  const size = Math.min(240, Math.max(80, n * 12));
  const cell = size / n;
  const { canvas, ctx } = hiDpiCanvas(left + size + 6, top + size + 6, "tmk-pattern");
  const lut = quantisedLut(theme, m.scale);
  const [mr, mg, mb] = MASKED[theme];
  for (let q = 0; q < n; q++)
    for (let k = 0; k < n; k++) {
      if (m.tril && k > q) ctx.fillStyle = `rgb(${mr},${mg},${mb})`;
      else {
        const c = m.get(q, k) * 4;
        ctx.fillStyle = `rgb(${lut[c]},${lut[c + 1]},${lut[c + 2]})`;
      }
      ctx.fillRect(left + k * cell, top + q * cell, Math.ceil(cell), Math.ceil(cell));
    }
  if (labels) {
    ctx.font = `10px ${colors.mono || "monospace"}`;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    tokens.forEach((t, q) => {
      ctx.fillStyle = q === pos ? colors.accent : colors.fg;
      ctx.fillText(shortToken(t, 10), left - 4, top + (q + 0.5) * cell);
    });
  }
  if (pos !== null && pos >= 0) {
    ctx.strokeStyle = colors.accent;
    ctx.lineWidth = 1.5;
    ctx.strokeRect(left, top + pos * cell, size, cell);
  }
  return canvas;
}

/**
 * Options: graph (the _graph trait), details (the _details trait), fetchPattern(layer) -> Promise.
 * Returns {node, show(id, n, edges, theme, colors)}.
 */
export function createDetails({ graph, details, fetchPattern }) {
  const node = h("div", { class: "tmk-details", attrs: { "aria-live": "polite" } });
  const tokens = graph.tokens ?? [];
  const pos = graph.pos;
  let request = 0;

  const edgeList = (title, list, side) => list.length
    ? h("div", {}, [h("h4", { text: title }), h("div", { class: "tmk-desc", text: list.slice(0, 4).map((e) => `${side === "in" ? e.from : e.to} (${e.kind.toUpperCase()}, ${num(e.weight)})`).join(", ") })])
    : null;

  return {
    node,
    show(id, n, edges, theme, colors) {
      const mine = ++request;
      node.dataset.node = id;
      if (!id) {
        node.replaceChildren(h("div", { class: "tmk-desc", text: "Click a node (or move with the arrow keys and press Enter) for its details." }));
        return;
      }
      const parts = [];
      const target = graph.target ? ` \u00ab${visibleToken(graph.target)}\u00bb` : "";
      if (n.kind === "logits") {
        parts.push(h("h4", { text: `Logits${target}` }));
        parts.push(h("div", { class: "tmk-desc", text: graph.logit !== null && graph.logit !== undefined ? `logit${target} = ${num(graph.logit)}: the sum of every direct effect (and the final biases).` : "The output: every edge into it carries its node's weight." }));
      } else {
        const name = n.kind === "embed" ? "Embeddings" : n.kind === "mlp" ? `Layer ${n.layer} MLP` : `Layer ${n.layer}, head ${n.head}`;
        parts.push(h("h4", { text: name }));
        parts.push(h("div", { class: "tmk-weight", attrs: { "data-value": n.w }, text: `weight ${num(n.w)} (${graph.label}${target})` }));
      }
      if (n.kind === "head") {
        parts.push(edgeList("Reads from (strongest edges in)", edges.filter((e) => e.to === id), "in"));
        parts.push(edgeList("Is read by (strongest edges out)", edges.filter((e) => e.from === id), "out"));
        const holder = h("div", { class: "tmk-pattern-holder" });
        parts.push(h("h4", { text: "Attention pattern" }), holder);
        if (!graph.patterns) holder.append(h("div", { class: "tmk-desc", text: "Trace with capture=['pattern', ...] to see it." }));
        else {
          fetchPattern(n.layer).then((t) => {
            if (mine !== request) return;
            const m = matrix(t, n.head);
            holder.append(patternCanvas(m, tokens, pos, theme, colors));
            if (pos !== null && pos >= 0) {
              let best = 0;
              for (let k = 1; k <= (m.tril ? pos : m.n - 1); k++) if (m.get(pos, k) > m.get(pos, best)) best = k;
              holder.append(h("div", { class: "tmk-desc tmk-attends", text: `From position ${pos} \u00ab${visibleToken(tokens[pos])}\u00bb it attends most to ${best} \u00ab${visibleToken(tokens[best])}\u00bb (${num(m.get(pos, best) * m.scale)}).` }));
            }
            node.dataset.pattern = `${n.layer}/${n.head}`;
          }, () => holder.append(h("div", { class: "tmk-desc", text: "The pattern is not in this page." })));
        }
      } else if (n.kind === "mlp") {
        const top = details.mlp?.[n.layer] ?? [];
        if (top.length) {
          parts.push(h("h4", { text: `Top neurons (by ${details.basis})` }));
          parts.push(h("table", {}, [
            h("thead", {}, [h("tr", {}, ["neuron", details.basis, "promotes"].map((t) => h("th", { text: t, attrs: { scope: "col" } })))]),
            h("tbody", {}, top.map((r) => h("tr", { attrs: { "data-neuron": r.neuron } }, [
              h("td", { class: "tmk-num", text: String(r.neuron) }),
              h("td", { class: "tmk-num", text: num(r.value) }),
              h("td", { class: "tmk-tok", text: r.tokens.map(visibleToken).join("  ") }),
            ]))),
          ]));
        } else parts.push(h("div", { class: "tmk-desc", text: "No neuron data: trace with mlp_post for the top neurons." }));
      }
      node.replaceChildren(...parts.filter(Boolean));
    },
  };
}
