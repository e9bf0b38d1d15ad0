// kit.widgets.CircuitDiagram, front end: an SVG graph of embeddings, heads, MLPs and logits
// weighted by an attribution or patching result, with a threshold slider and a details panel.
import css from "./style.css";
import { mountRoot, select, markReady, showError, listeners, followHeight, tableToggle } from "../shared/widget.js";
import { createFetcher } from "../shared/fetch.js";
import { decodeTensor } from "../shared/tensor.js";
import { divergingLegend, palette } from "../shared/colors.js";
import { createTooltip } from "../shared/tooltip.js";
import { h, num } from "../shared/dom.js";
import { visibleToken } from "../shared/tokens.js";
import { createGraph, neighbour, nodeId } from "./graph.js";
import { createDetails } from "./details.js";

function render({ model, el }) {
  const graph = model.get("_graph");
  const { n_layers: L, n_heads: H } = graph;
  const view = { built: false, disposed: false, graph: null, details: null };
  const subs = listeners(model);
  const fetcher = createFetcher(model, el);
  const host = mountRoot(el, { name: "circuit", css, label: "Circuit diagram", model, onTheme: () => repaint() });
  const { root } = host;
  const tooltip = createTooltip(root);

  const slider = h("input", { attrs: { type: "range", min: 0, max: 1, step: 0.05, "aria-label": "Threshold, as a share of the largest weight" } });
  const sliderText = h("span", { class: "tmk-threshold-value" });
  const desc = h("div", { class: "tmk-desc" });
  const key = divergingLegend(graph.label, 1);
  const wrap = h("div", { class: "tmk-graph-wrap" });
  const tableView = h("div", { attrs: { "aria-label": "Nodes and weights as a table" } });
  const tableButton = tableToggle(tableView, [wrap], () => buildTable());

  const target = graph.target ? ` \u00ab${visibleToken(graph.target)}\u00bb` : "";
  const at = graph.pos !== null && graph.pos !== undefined && graph.tokens.length ? ` at position ${graph.pos} \u00ab${visibleToken(graph.tokens[graph.pos])}\u00bb` : "";
  desc.textContent = `Nodes: ${graph.label}${target}${at}. Edges into the logits carry a node's weight; head-to-head edges: ${graph.edge_note ?? "composition \u00d7 \u221a(|w\u2081|\u00b7|w\u2082|)"}.`;

  root.append(
    h("div", { class: "tmk-header" }, [h("span", { class: "tmk-title", text: "Circuit" }), h("span", { class: "tmk-spacer" }), tableButton]),
    desc,
    h("div", { class: "tmk-controls" }, [h("label", {}, ["threshold", slider]), sliderText, key.node]),
  );
  followHeight(root, model, subs);

  const current = () => model.get("node");

  function select_(id) {
    const n = view.graph.nodes.get(id);
    const changes = { node: id };
    if (n?.kind === "head") Object.assign(changes, { layer: n.layer, head: n.head });
    else if (n?.kind === "mlp") changes.layer = n.layer;
    select(model, changes);
  }

  function showThreshold(t) {
    sliderText.textContent = `${t.toFixed(2)} \u00d7 max |w| = ${num(t * view.graph.maxW)}`;
    view.graph.setThreshold(t, host.theme());
    root.dataset.edges = view.graph.node.dataset.edges;
  }

  function showNode() {
    const id = current();
    root.dataset.node = id;
    root.dataset.layer = String(model.get("layer"));
    root.dataset.head = String(model.get("head"));
    view.graph.setSelected(id);
    const n = view.graph.nodes.get(id);
    view.details.show(n ? id : "", n, n ? view.graph.edgesOf(id) : [], host.theme(), palette(root));
  }

  function buildTable() {
    const rows = [...view.graph.nodes].filter(([, n]) => n.w !== null).sort((a, b) => Math.abs(b[1].w) - Math.abs(a[1].w));
    tableView.replaceChildren(h("table", {}, [
      h("caption", { text: `Nodes by |weight| (${graph.label}${target})` }),
      h("thead", {}, [h("tr", {}, ["node", "weight", "strongest edges in"].map((t) => h("th", { text: t, attrs: { scope: "col" } })))]),
      h("tbody", {}, rows.map(([id, n]) => h("tr", {}, [
        h("th", { text: id, attrs: { scope: "row" } }),
        h("td", { text: num(n.w) }),
        h("td", { text: view.graph.edgesOf(id).filter((e) => e.to === id).slice(0, 3).map((e) => `${e.from} ${e.kind.toUpperCase()} ${num(e.weight)}`).join(", ") }),
      ]))),
    ]));
  }

  function repaint() {
    if (!view.built || view.disposed) return;
    key.redraw(host.theme());
    showThreshold(Number(slider.value));
    showNode();
  }

  // an outside change of layer or head (a linked view) selects that head, or that layer's MLP
  const onLayerHead = () => {
    const id = current();
    const n = view.graph.nodes.get(id);
    const next = n?.kind === "mlp" ? nodeId("mlp", model.get("layer")) : nodeId("head", model.get("layer"), model.get("head"));
    if (next !== id) select(model, { node: next });
    else showNode();
  };

  Promise.all([
    decodeTensor(model.get("_weights")),
    ...["pairs", "weight", "kind"].map((k) => decodeTensor(model.get("_edges")[k])),
  ]).then(([weights, pairs, weight, kind]) => {
    if (view.disposed) return;
    const E = weight.values.length;
    const src = new Int32Array(E);
    const dst = new Int32Array(E);
    for (let i = 0; i < E; i++) {
      src[i] = pairs.values[2 * i];
      dst[i] = pairs.values[2 * i + 1];
    }
    view.graph = createGraph({
      nLayers: L,
      nHeads: H,
      weights: weights.values,
      edges: { src, dst, weight: weight.values, kind: kind.values },
      kinds: graph.kinds,
      onSelect: (id) => select_(id),
      onHover: (id, event) => {
        if (!id) { tooltip.hide(); return; }
        const n = view.graph.nodes.get(id);
        const lines = [id === "embed" ? "embeddings" : id];
        if (n.w !== null) lines.push(["weight", num(n.w)]);
        for (const e of view.graph.edgesOf(id).filter((x) => x.to === id).slice(0, 3)) lines.push([`\u2190 ${e.from} (${e.kind.toUpperCase()})`, num(e.weight)]);
        tooltip.show(lines, event.clientX, event.clientY);
      },
    });
    view.details = createDetails({ graph, details: model.get("_details"), fetchPattern: (layer) => fetcher.get(`pattern/${layer}`) });
    wrap.append(view.graph.node);
    root.append(h("div", { class: "tmk-body" }, [wrap, tableView, view.details.node]));
    key.setMax(view.graph.maxW, graph.label);
    slider.value = String(model.get("threshold"));
    view.graph.node.addEventListener("keydown", (event) => {
      const from = document.activeElement?.closest?.(".tmk-node")?.dataset.node ?? (current() || "embed");
      if (event.key.startsWith("Arrow")) view.graph.focusNode(neighbour(from, event.key, L, H));
      else if (event.key === "Enter" || event.key === " ") select_(from);
      else if (event.key === "Escape") select(model, { node: "" });
      else return;
      event.preventDefault();
    });
    view.built = true;
    repaint();
    buildTable(); // for screen readers, and for the Table button
    markReady(root);
  }).catch((e) => showError(root, e));

  slider.addEventListener("input", () => showThreshold(Number(slider.value)));
  slider.addEventListener("change", () => select(model, { threshold: Number(slider.value) }));
  subs.on("change:threshold", () => {
    slider.value = String(model.get("threshold"));
    if (view.built) showThreshold(model.get("threshold"));
  });
  subs.on("change:node", () => { if (view.built) showNode(); });
  subs.on("change:layer", () => { if (view.built) onLayerHead(); });
  subs.on("change:head", () => { if (view.built) onLayerHead(); });

  return () => {
    view.disposed = true;
    subs.off();
    fetcher.dispose();
    host.dispose();
  };
}

export default { render };
