// kit.widgets.ResidualLens, front end: the logit lens as a layers x positions grid, residual
// norms, and a direct-logit-attribution waterfall at the selected position.
import css from "./style.css";
import { mountRoot, select, markReady, showError, listeners, followHeight, tableToggle } from "../shared/widget.js";
import { createFetcher } from "../shared/fetch.js";
import { decodeTensor } from "../shared/tensor.js";
import { legend, rampColor, palette, textOn } from "../shared/colors.js";
import { createCellGrid } from "../shared/cellgrid.js";
import { tokenHeader } from "../shared/axis.js";
import { createTooltip } from "../shared/tooltip.js";
import { h, num } from "../shared/dom.js";
import { visibleToken, shortToken } from "../shared/tokens.js";
import { createWaterfall } from "./waterfall.js";
import { createNorms } from "./norms.js";

function render({ model, el }) {
  const info = model.get("_info");
  const tokens = model.get("_tokens");
  const vocab = model.get("_vocab");
  const { n_layers: L, n_heads: H, n_tokens: T, k } = info;
  const view = { ids: null, probs: null, norms: null, target: null, built: false, disposed: false, shownPos: -1 };
  const subs = listeners(model);
  const fetcher = createFetcher(model, el);

  const host = mountRoot(el, { name: "lens", css, label: "Residual stream lens", model, onTheme: () => repaint() });
  const { root } = host;
  const tooltip = createTooltip(root);

  // --- lookups
  const at = (l, p, i) => (l * T + p) * k + i;
  const topText = (l, p, i = 0) => vocab[view.ids[at(l, p, i)]];
  const topProb = (l, p, i = 0) => view.probs[at(l, p, i)];
  const rankAt = (l, p) => view.target.rank[l * T + p];
  const probAt = (l, p) => view.target.prob[l * T + p];
  const colorMode = () => (model.get("color") === "rank" && view.target ? "rank" : "prob");
  const logV = Math.log(Math.max(2, info.vocab_size));
  const rankU = (r) => 1 - Math.log1p(r) / logV; // 1 at rank 0, 0 at the bottom of the vocabulary
  const shownPos = () => (model.get("token") >= 0 ? model.get("token") : T - 1);

  // --- header
  const probButton = h("button", { class: "tmk-btn", text: "probability", attrs: { type: "button", "data-color": "prob" }, on: { click: () => select(model, { color: "prob" }) } });
  const rankButton = h("button", { class: "tmk-btn", text: "target rank", attrs: { type: "button", "data-color": "rank" }, on: { click: () => select(model, { color: "rank" }) } });
  const targetText = h("span", { class: "tmk-desc" });
  const tableView = h("div", { attrs: { "aria-label": "Logit lens at the selected position, as a table" } });
  const readout = h("div", { class: "tmk-readout", attrs: { "aria-live": "polite" } });
  const key = legend("top-1 probability", 0, 1);

  // --- grid
  const cellW = 62;
  const cellH = 20;
  const header = tokenHeader({ tokens, cellW, selected: () => model.get("token") });
  const grid = createCellGrid({
    rows: L,
    cols: T,
    cellW,
    cellH,
    labelW: 40,
    headerH: header.height,
    maxHeight: 460,
    label: `Logit lens: ${L} layers (rows) by ${T} positions (columns); each cell is the top prediction of the residual stream after that layer. Arrow keys move, Enter selects, Escape clears.`,
    getColors: () => palette(root),
    rowLabel: (r) => `L${r}`,
    drawHeader: header.draw,
    paintCell: (ctx, r, c, x, y, w, hh, colors) => {
      if (!view.ids) return;
      const rank = colorMode() === "rank";
      const u = rank ? rankU(rankAt(r, c)) : topProb(r, c);
      const rgb = rampColor(host.theme(), u);
      ctx.fillStyle = `rgb(${rgb.join(",")})`;
      ctx.fillRect(x, y, w - 1, hh - 1);
      const isTarget = view.target && view.ids[at(r, c, 0)] !== undefined && topText(r, c) === view.target.text;
      ctx.fillStyle = textOn(rgb);
      ctx.font = `${isTarget ? "bold " : ""}10px ${colors.mono || "monospace"}`;
      ctx.textAlign = "left";
      ctx.textBaseline = "middle";
      ctx.fillText(shortToken(topText(r, c), Math.floor((w - 6) / 6.1)), x + 3, y + hh / 2);
    },
    onHover: (r, c, event) => {
      if (r < 0) {
        tooltip.hide();
        describeSelection();
        return;
      }
      tooltip.show(cellLines(r, c), event.clientX, event.clientY);
      readout.textContent = cellText(r, c);
    },
    onCursor: (r, c) => { readout.textContent = cellText(r, c); },
    onSelect: (r, c) => select(model, { layer: r, token: c }),
    onClear: () => select(model, { token: -1 }),
  });

  const waterfallTitle = h("div", { class: "tmk-wf-title" });
  const waterfall = createWaterfall({
    nLayers: L,
    nHeads: H,
    onHead: (layer, head) => select(model, { layer, head }),
    onLayer: (layer) => select(model, { layer }),
  });
  waterfall.node.prepend(waterfallTitle);
  const norms = createNorms(info.norm_rows);
  const tableButton = tableToggle(tableView, [grid.node], () => buildTable());

  root.append(
    h("div", { class: "tmk-header" }, [
      h("span", { class: "tmk-title", text: "Residual stream lens" }),
      h("span", { class: "tmk-seg", attrs: { role: "group", "aria-label": "Colour cells by" } }, [probButton, rankButton]),
      targetText,
      h("span", { class: "tmk-spacer" }),
      tableButton,
    ]),
    grid.node,
    tableView,
    h("div", { class: "tmk-foot" }, [readout, key.node]),
    h("div", { class: "tmk-lower" }, [info.dla ? waterfall.node : h("div", { class: "tmk-desc", text: "No attribution: trace with resid_pre, resid_post, head_out and mlp_out at every layer for the waterfall." }), norms.node]),
  );
  followHeight(root, model, subs);

  // --- text
  const posName = (p) => `${p} \u00ab${visibleToken(tokens[p])}\u00bb`;

  function cellLines(r, c) {
    const lines = [`L${r} \u00b7 position ${posName(c)}`];
    for (let i = 0; i < k; i++) lines.push([visibleToken(topText(r, c, i)), num(topProb(r, c, i))]);
    if (view.target) lines.push([`target ${visibleToken(view.target.text)}`, `rank ${rankAt(r, c)} \u00b7 p ${num(probAt(r, c))}`]);
    return lines;
  }

  function cellText(r, c) {
    const tops = [];
    for (let i = 0; i < k; i++) tops.push(`\u00ab${visibleToken(topText(r, c, i))}\u00bb ${num(topProb(r, c, i))}`);
    let text = `Layer ${r}, position ${posName(c)}: ${tops.join(", ")}`;
    if (view.target) text += `; target \u00ab${visibleToken(view.target.text)}\u00bb rank ${rankAt(r, c)}, p ${num(probAt(r, c))}`;
    return text;
  }

  function describeSelection() {
    const layer = model.get("layer");
    const token = model.get("token");
    root.dataset.layer = String(layer);
    root.dataset.head = String(model.get("head"));
    root.dataset.token = String(token);
    grid.setSelected(token >= 0 ? layer : -1, token);
    waterfall.setSelected(layer, model.get("head"));
    if (!view.ids) return;
    readout.textContent = token >= 0 ? `Selected: ${cellText(layer, token)}` : "Hover a cell for the top tokens; click one to select that layer and position.";
  }

  function describeColor() {
    const mode = colorMode();
    root.dataset.color = mode;
    probButton.setAttribute("aria-pressed", String(mode === "prob"));
    rankButton.setAttribute("aria-pressed", String(mode === "rank"));
    rankButton.disabled = !view.target;
    rankButton.title = view.target ? "Colour by the target's rank (log scale)" : "Set a target token in Python (lens.target = ' Paris') to colour by its rank";
    targetText.textContent = view.target ? `target \u00ab${visibleToken(view.target.text)}\u00bb` : "no target";
    if (mode === "rank") {
      const V = Math.max(2, info.vocab_size);
      const ticks = [0, 0.25, 0.5, 0.75, 1].map((u) => String(Math.round(Math.exp((1 - u) * Math.log(V)) - 1)));
      key.setTicks(ticks, "target rank (log scale; 0 = top)");
    } else {
      key.setRange(0, 1, "top-1 probability");
    }
    key.redraw(host.theme());
  }

  async function showPosition() {
    const pos = shownPos();
    norms.update(Array.from({ length: info.norm_rows.length }, (_, i) => view.norms[i * T + pos]), `position ${posName(pos)}`);
    root.dataset.normPos = String(pos);
    if (!info.dla) return;
    const keyName = `dla/${pos}` + (view.target ? `@${view.target.id}` : "");
    const t = await fetcher.get(keyName);
    if (view.disposed || pos !== shownPos() || keyName !== `dla/${shownPos()}` + (view.target ? `@${view.target.id}` : "")) return;
    waterfallTitle.textContent = `Direct logit attribution to \u00ab${visibleToken(t.meta.target)}\u00bb at position ${posName(pos)}${view.target ? "" : " (its top prediction)"}`;
    waterfall.update(t.values, host.theme());
    waterfall.setSelected(model.get("layer"), model.get("head"));
    root.dataset.wfPos = String(pos);
    root.dataset.wfTarget = t.meta.target;
  }

  function buildTable() {
    if (!view.ids) return;
    const pos = shownPos();
    const head = h("tr", {}, [
      h("th", { text: "Layer", attrs: { scope: "col" } }),
      h("th", { text: `Top ${k} tokens (probability)`, attrs: { scope: "col" } }),
      view.target ? h("th", { text: `Target \u00ab${visibleToken(view.target.text)}\u00bb rank, p`, attrs: { scope: "col" } }) : null,
      h("th", { text: "\u2016resid\u2016", attrs: { scope: "col" } }),
    ]);
    const off = info.norm_rows.length - L;
    const rows = [];
    for (let l = 0; l < L; l++) {
      const tops = [];
      for (let i = 0; i < k; i++) tops.push(`${visibleToken(topText(l, pos, i))} (${num(topProb(l, pos, i))})`);
      rows.push(h("tr", {}, [
        h("th", { text: `L${l}`, attrs: { scope: "row" } }),
        h("td", { class: "tmk-tok", text: tops.join(", ") }),
        view.target ? h("td", { class: "tmk-num", text: `${rankAt(l, pos)}, ${num(probAt(l, pos))}` }) : null,
        h("td", { class: "tmk-num", text: num(view.norms[(off + l) * T + pos]) }),
      ]));
    }
    tableView.replaceChildren(h("table", {}, [h("caption", { text: `Logit lens at position ${posName(pos)}` }), h("thead", {}, [head]), h("tbody", {}, rows)]));
  }

  function repaint() {
    if (!view.built || view.disposed) return;
    describeColor();
    grid.redraw();
    waterfall.repaint(host.theme());
  }

  const onToken = () => {
    describeSelection();
    grid.redraw();
    showPosition().catch((e) => showError(root, e));
    buildTable(); // kept current: it is what screen readers read
  };
  const onTarget = async () => {
    const t = model.get("_target");
    if (t && t.rank) {
      const [rank, prob] = await Promise.all([decodeTensor(t.rank), decodeTensor(t.prob)]);
      view.target = { text: t.text, id: t.id, rank: rank.values, prob: prob.values };
    } else {
      view.target = null;
    }
    if (view.disposed) return;
    repaint();
    if (view.ids) buildTable();
    await showPosition();
  };
  subs.on("change:token", onToken);
  subs.on("change:layer", () => { describeSelection(); grid.redraw(); });
  subs.on("change:head", describeSelection);
  subs.on("change:color", repaint);
  subs.on("change:_target", () => onTarget().catch((e) => showError(root, e)));

  const lens = model.get("_lens");
  Promise.all([decodeTensor(lens.ids), decodeTensor(lens.probs), decodeTensor(model.get("_norms"))])
    .then(async ([ids, probs, normsT]) => {
      view.ids = ids.values;
      view.probs = probs.values;
      view.norms = normsT.values;
      view.built = true;
      await onTarget();
      describeSelection();
      grid.drawNow();
      if (model.get("token") >= 0) grid.reveal(model.get("layer"), model.get("token"));
      if (!view.disposed) markReady(root);
    })
    .catch((e) => showError(root, e));

  return () => {
    view.disposed = true;
    subs.off();
    fetcher.dispose();
    grid.dispose();
    host.dispose();
  };
}

export default { render };
