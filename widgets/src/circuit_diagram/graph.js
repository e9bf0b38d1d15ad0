// The circuit as SVG: a row per layer (embeddings at the bottom, logits on top), a column per
// head plus the MLP; edges into the logits and between heads.
import { s, num } from "../shared/dom.js";
import { divergingCss, divergingColor, textOn } from "../shared/colors.js";

const MAX_DRAWN_EDGES = 200;

/** Node ids: "embed", "L<l>.H<h>", "L<l>.MLP", "logits". */
export function nodeId(kind, layer, head) {
  if (kind === "head") return `L${layer}.H${head}`;
  if (kind === "mlp") return `L${layer}.MLP`;
  return kind;
}

/**
 * Options: nLayers, nHeads, weights (Float32Array [1 + L*H + L]), edges {src, dst, weight, kind}
 * (typed arrays, flat head indices), kinds, onSelect(id), onHover(id, event) (null on leave).
 * Returns {node, layout, setThreshold(t, theme), setSelected(id), focusNode(id), nodes}.
 */
export function createGraph({ nLayers: L, nHeads: H, weights, edges, kinds, onSelect, onHover }) {
  const colW = Math.max(34, Math.min(56, Math.floor(700 / (H + 1))));
  const rowH = L <= 12 ? 46 : Math.max(22, Math.floor(620 / L));
  const left = 44;
  const gap = 14;
  const width = left + (H + 1) * colW + gap + 10;
  const height = (L + 2) * rowH + 8;
  const cx = left + ((H + 1) * colW + gap) / 2;
  const yRow = (row) => 4 + row * rowH + rowH / 2; // row 0: logits, 1..L: layers from the top, L + 1: embed
  const yLayer = (l) => yRow(L - l);
  const xHead = (h) => left + (h + 0.5) * colW;
  const xMlp = left + (H + 0.5) * colW + gap;
  const wHead = (l, h) => weights[1 + l * H + h];
  const wMlp = (l) => weights[1 + L * H + l];
  const maxW = Math.max(1e-12, ...Array.from(weights, Math.abs));

  const nodes = new Map(); // id -> {x, y, w, kind, layer, head, el}
  nodes.set("logits", { x: cx, y: yRow(0) - 8, w: null, kind: "logits" });
  for (let l = L - 1; l >= 0; l--) {
    for (let h = 0; h < H; h++) nodes.set(nodeId("head", l, h), { x: xHead(h), y: yLayer(l), w: wHead(l, h), kind: "head", layer: l, head: h });
    nodes.set(nodeId("mlp", l), { x: xMlp, y: yLayer(l), w: wMlp(l), kind: "mlp", layer: l });
  }
  nodes.set("embed", { x: cx, y: yRow(L + 1), w: weights[0], kind: "embed" });

  const edgeLayer = s("g", { class: "tmk-edges" });
  const nodeLayer = s("g", { class: "tmk-nodes" });
  const axis = s("g", { class: "tmk-axis-layer", "aria-hidden": "true" });
  for (let l = 0; l < L; l++) axis.append(s("text", { class: "tmk-axis", x: left - 8, y: yLayer(l) + 3, "text-anchor": "end", text: `L${l}` }));
  for (let h = 0; h < H; h++) axis.append(s("text", { class: "tmk-axis", x: xHead(h), y: yRow(0) + rowH / 2 - 2, "text-anchor": "middle", text: `H${h}` }));
  axis.append(s("text", { class: "tmk-axis", x: xMlp, y: yRow(0) + rowH / 2 - 2, "text-anchor": "middle", text: "MLP" }));
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "group", "aria-label": `Circuit: ${L} layers of ${H} heads and an MLP, between the embeddings and the logits. Arrow keys move between nodes, Enter selects one.` }, [axis, edgeLayer, nodeLayer]);

  // nodes
  const describe = (id, n) => (n.w === null ? "logits" : `${id === "embed" ? "embeddings" : id}: weight ${num(n.w)}`);
  for (const [id, n] of nodes) {
    const shape = n.kind === "embed" || n.kind === "logits"
      ? s("rect", { x: n.x - 46, y: n.y - 11, width: 92, height: 22, rx: 5 })
      : n.kind === "mlp" ? s("rect", { x: n.x - 9, y: n.y - 9, width: 18, height: 18, rx: 3 }) : s("circle", { cx: n.x, cy: n.y, r: 6 });
    const label = n.kind === "embed" || n.kind === "logits" ? s("text", { class: "tmk-io-label", x: n.x, y: n.y + 4, "text-anchor": "middle", text: n.kind === "embed" ? "embeddings" : "logits" }) : null;
    const el = s("g", { class: `tmk-node tmk-node-${n.kind}`, role: "button", tabindex: -1, "data-node": id, "aria-label": describe(id, n), "aria-pressed": "false" }, [shape, label, s("title", { text: describe(id, n) })]);
    n.el = el;
    n.shape = shape;
    n.label = label;
    el.addEventListener("click", () => onSelect(id));
    el.addEventListener("mouseenter", (event) => onHover(id, event));
    el.addEventListener("mouseleave", () => onHover(null));
    nodeLayer.append(el);
  }

  // edges: every node into the logits, and head to head
  const allEdges = [];
  for (const [id, n] of nodes) if (n.w !== null) allEdges.push({ from: id, to: "logits", weight: Math.abs(n.w), sign: Math.sign(n.w), kind: "out" });
  for (let i = 0; i < edges.weight.length; i++) {
    const a = edges.src[i];
    const b = edges.dst[i];
    allEdges.push({ from: nodeId("head", Math.floor(a / H), a % H), to: nodeId("head", Math.floor(b / H), b % H), weight: edges.weight[i], sign: 0, kind: kinds[edges.kind[i]] });
  }
  allEdges.sort((a, b) => b.weight - a.weight);
  const path = (p, q) => {
    const my = (p.y + q.y) / 2;
    return `M${p.x.toFixed(1)},${p.y.toFixed(1)} C${p.x.toFixed(1)},${my.toFixed(1)} ${q.x.toFixed(1)},${my.toFixed(1)} ${q.x.toFixed(1)},${q.y.toFixed(1)}`;
  };

  let selected = "";
  let shown = [];
  return {
    node: svg,
    nodes,
    maxW,
    width,
    height,
    edgesOf(id) {
      return allEdges.filter((e) => e.kind !== "out" && (e.from === id || e.to === id));
    },
    /** Show edges of weight >= t * max|w| (the strongest MAX_DRAWN_EDGES), dim weaker nodes. */
    setThreshold(t, theme) {
      const cut = t * maxW;
      shown = allEdges.filter((e) => e.weight >= cut && e.weight > 0).slice(0, MAX_DRAWN_EDGES);
      edgeLayer.replaceChildren(...shown.map((e) => {
        const p = nodes.get(e.from);
        const q = nodes.get(e.to);
        const u = Math.min(1, e.weight / maxW);
        const attrs = { class: `tmk-edge tmk-edge-${e.kind === "out" ? "out" : "head"}`, d: path(p, q), "stroke-width": (0.6 + 3.4 * u).toFixed(2), opacity: (0.25 + 0.6 * u).toFixed(2), "data-from": e.from, "data-to": e.to };
        if (e.kind === "out") attrs.stroke = divergingCss(theme, e.sign * 0.8);
        return s("path", attrs);
      }));
      let strong = 0;
      for (const n of nodes.values()) {
        if (n.w === null) continue;
        const weak = Math.abs(n.w) < cut;
        strong += weak ? 0 : 1;
        n.el.classList.toggle("tmk-weak", weak);
        const rgb = divergingColor(theme, n.w / maxW);
        n.shape.setAttribute("fill", `rgb(${rgb.join(",")})`);
        n.label?.setAttribute("fill", textOn(rgb));
        if (n.kind === "head") n.shape.setAttribute("r", (3.5 + 9 * Math.min(1, Math.abs(n.w) / maxW)).toFixed(2));
      }
      nodes.get("logits").shape.setAttribute("fill", "var(--tmk-bg-alt)");
      nodes.get("logits").label.setAttribute("fill", "var(--tmk-fg)");
      svg.dataset.edges = String(shown.length);
      svg.dataset.strong = String(strong);
      this.light(selected);
    },
    /** Highlight the edges that touch `id`. */
    light(id) {
      for (const el of edgeLayer.children) el.classList.toggle("tmk-lit", id !== "" && (el.dataset.from === id || el.dataset.to === id));
    },
    setSelected(id) {
      selected = id;
      for (const [key, n] of nodes) {
        n.el.setAttribute("aria-pressed", String(key === id));
        n.el.setAttribute("tabindex", key === (id || "embed") ? "0" : "-1");
      }
      this.light(id);
    },
    focusNode(id) {
      const n = nodes.get(id);
      if (!n) return;
      for (const m of nodes.values()) m.el.setAttribute("tabindex", m === n ? "0" : "-1");
      n.el.focus();
    },
  };
}

/** The node reached from `id` by an arrow key. */
export function neighbour(id, key, L, H) {
  const m = /^L(\d+)\.(?:H(\d+)|MLP)$/.exec(id);
  const layer = m ? Number(m[1]) : id === "logits" ? L : -1;
  const col = m ? (m[2] !== undefined ? Number(m[2]) : H) : Math.floor(H / 2);
  const at = (l, c) => (l < 0 ? "embed" : l >= L ? "logits" : c >= H ? nodeId("mlp", l) : nodeId("head", l, c));
  if (key === "ArrowUp") return at(layer + 1, col);
  if (key === "ArrowDown") return at(layer - 1, col);
  if (!m) return id;
  if (key === "ArrowLeft") return at(layer, Math.max(0, col - 1));
  if (key === "ArrowRight") return at(layer, Math.min(H, col + 1));
  return id;
}
