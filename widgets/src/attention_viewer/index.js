// kit.widgets.AttentionViewer, front end: every head as a thumbnail, one head large,
// the prompt's tokens; selection (layer, head, token) shared with Python.
import css from "./style.css";
import { mountRoot, select, markReady, showError } from "../shared/widget.js";
import { createFetcher } from "../shared/fetch.js";
import { decodeTensor, matrix } from "../shared/tensor.js";
import { legend, quantisedLut, palette } from "../shared/colors.js";
import { h, fmt } from "../shared/dom.js";
import { visibleToken } from "../shared/tokens.js";
import { createGrid, scoreLabel } from "./grid.js";
import { createHeatmap } from "./heatmap.js";
import { createTokenStrip } from "./strip.js";
import { createTable } from "./table.js";

const STRIP_HEIGHT = 66;
let counter = 0;

function render({ model, el }) {
  const { n_layers: nLayers, n_heads: nHeads } = model.get("_shape");
  const tokens = model.get("_tokens");
  const uid = `tmk-attn-${++counter}-${Math.random().toString(36).slice(2, 8)}`;
  const view = { hover: -1, hoverKey: -1, cursor: -1, head: null, thumbs: null, built: false, disposed: false };

  const host = mountRoot(el, { name: "attn", css, label: "Attention viewer", model, onTheme: () => repaint() });
  const { root } = host;
  const fetcher = createFetcher(model, el);

  // --- header
  const selection = h("span", { class: "tmk-selection" });
  const scoreText = h("span", { class: "tmk-scores" });
  const tableButton = h("button", { class: "tmk-btn", text: "Table", attrs: { type: "button", "aria-pressed": "false", title: "Show the selected head as a table" } });
  root.append(h("div", { class: "tmk-header" }, [
    h("span", { class: "tmk-title", text: "Attention" }), selection, scoreText, h("span", { class: "tmk-spacer" }), tableButton,
  ]));

  // --- components
  const locked = () => model.get("token");
  const setLock = (t) => select(model, { token: locked() === t ? -1 : t });
  const heat = createHeatmap({
    tokens,
    onHover: (q, k) => { view.hover = q; view.hoverKey = k; highlight(); },
    onLock: setLock,
    onKey: (event) => keyboard(event),
  });
  const strip = createTokenStrip({
    tokens,
    height: STRIP_HEIGHT,
    onHover: (t) => { view.hover = t; view.hoverKey = -1; highlight(); },
    onLock: setLock,
  });
  const panelHeight = parseFloat(heat.node.style.height) + 64; // heatmap + readout + legend
  const grid = createGrid({
    nLayers,
    nHeads,
    uid,
    height: panelHeight,
    bars: Math.min(3, Object.keys(model.get("_scores") || {}).length),
    onSelect: (layer, head) => select(model, { layer, head }),
  });
  const table = createTable(tokens);
  const readout = h("div", { class: "tmk-readout", attrs: { "aria-live": "polite" } });
  const colourKey = legend("attention", 0, 1);
  const scoreKey = h("div", { class: "tmk-key" });
  const tableView = h("div", { class: "tmk-table-view tmk-sr-only" }, [table.node]);

  const heatPanel = h("div", {}, [heat.node]);
  const zoomPanel = h("div", { class: "tmk-zoom-panel" }, [heatPanel, tableView, readout, colourKey.node]);
  const gridPanel = h("div", { class: "tmk-grid-panel", style: { "max-height": `${panelHeight}px` } }, [grid.node, scoreKey]);
  const body = h("div", { class: "tmk-body" }, [gridPanel, zoomPanel]);
  const stripPanel = h("div", { class: "tmk-strip-panel" }, [
    h("div", { class: "tmk-key" }, [
      h("span", { text: "Tokens: hover or click one (click again to release)." }),
      h("span", {}, [h("i", { style: { background: "var(--tmk-accent)" } }), "row: what it attends to (chip colour)"]),
      h("span", {}, [h("i", { style: { background: "var(--tmk-accent-2)" } }), "column: what attends to it (underline)"]),
    ]),
    strip.node,
  ]);
  root.append(body, stripPanel);
  tableView.style.height = heat.node.style.height;
  tableView.style.width = heat.node.style.width;

  const natural = 20 + 22 + 8 + panelHeight + 8 + (STRIP_HEIGHT + 22) + 2;
  const applyHeight = () => {
    const requested = model.get("height");
    root.style.height = `${requested > 0 ? requested : Math.round(natural)}px`;
  };
  applyHeight();

  tableButton.addEventListener("click", () => {
    const show = tableButton.getAttribute("aria-pressed") !== "true";
    tableButton.setAttribute("aria-pressed", String(show));
    tableView.classList.toggle("tmk-sr-only", !show);
    heatPanel.hidden = show;
  });

  // --- behaviour
  function keyboard(event) {
    const n = tokens.length;
    const at = view.cursor >= 0 ? view.cursor : locked() >= 0 ? locked() : -1;
    const moves = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1, PageDown: 10, PageUp: -10 };
    if (event.key in moves) view.cursor = Math.max(0, Math.min(n - 1, (at < 0 ? -1 : at) + moves[event.key]));
    else if (event.key === "Home") view.cursor = 0;
    else if (event.key === "End") view.cursor = n - 1;
    else if (event.key === "Enter" || event.key === " ") { if (view.cursor >= 0) setLock(view.cursor); }
    else if (event.key === "Escape") { view.cursor = -1; select(model, { token: -1 }); }
    else return;
    event.preventDefault();
    view.hover = view.cursor;
    view.hoverKey = -1;
    highlight();
    strip.reveal(view.cursor);
  }

  function highlight() {
    if (view.disposed) return;
    const lock = locked();
    const token = view.hover >= 0 ? view.hover : lock;
    const colors = palette(root);
    heat.highlight(view.head ? token : -1, view.hoverKey, colors);
    strip.highlight(token, token === lock && lock >= 0, view.head, host.theme());
    root.dataset.token = String(token);
    root.dataset.locked = String(lock);
    if (token < 0 || !view.head) {
      if (view.head) readout.textContent = "Hover a row or a token to see where it looks; click to lock.";
      return;
    }
    const m = view.head;
    const what = `${token} \u00ab${visibleToken(tokens[token])}\u00bb`;
    if (view.hoverKey >= 0) {
      const k = view.hoverKey;
      const value = k <= token || !m.tril ? fmt(m.get(token, k) * m.scale, 3) : "masked";
      readout.textContent = `query ${what} \u2192 key ${k} \u00ab${visibleToken(tokens[k])}\u00bb: ${value}`;
    } else {
      readout.textContent = `token ${what}${token === lock ? " (locked)" : ""}: row = what it attends to, column = what attends to it`;
    }
  }

  function describeSelection() {
    const layer = model.get("layer");
    const head = model.get("head");
    selection.textContent = `Layer ${layer} \u00b7 Head ${head}`;
    scoreText.textContent = grid.scoreText(layer, head);
    root.dataset.layer = String(layer);
    root.dataset.head = String(head);
    grid.setSelected(layer, head);
  }

  // Thumbnails of short prompts are the full patterns: no need to fetch layers then.
  const thumbsReady = decodeTensor(model.get("_thumbs"));

  // Longer prompts: only the zoomed head's full pattern travels, fetched when it is shown.
  async function headMatrix(layer, head) {
    const thumbs = await thumbsReady;
    if (thumbs.shape[thumbs.shape.length - 1] === tokens.length) return matrix(thumbs, layer * nHeads + head);
    return matrix(await fetcher.get(`head/${layer}/${head}`), 0);
  }

  async function showHead() {
    const layer = model.get("layer");
    const head = model.get("head");
    describeSelection();
    let m;
    try {
      m = await headMatrix(layer, head);
    } catch (e) {
      // A static page exported with to_html(heads=[...]) holds only some heads: say so, stay usable.
      if (!/in this page/.test(String(e?.message))) throw e;
      if (view.disposed || layer !== model.get("layer") || head !== model.get("head")) return;
      view.head = null;
      heat.clear();
      readout.textContent = `Layer ${layer}, head ${head} is not in this page: export it with to_html(heads=[(${layer}, ${head}), ...]).`;
      root.dataset.painted = `missing:${layer}/${head}`;
      highlight();
      return;
    }
    if (view.disposed || layer !== model.get("layer") || head !== model.get("head")) return;
    view.head = m;
    paintHead();
    root.dataset.painted = `${layer}/${head}`;
    table.update(layer, head, view.head);
    highlight();
  }

  function paintHead() {
    if (!view.head) return;
    heat.draw(view.head, quantisedLut(host.theme(), view.head.scale), host.theme(), palette(root));
  }

  function paintThumbs() {
    if (view.thumbs) grid.draw(view.thumbs, quantisedLut(host.theme(), view.thumbs.scale), host.theme());
  }

  function repaint() {
    if (!view.built || view.disposed) return;
    colourKey.redraw(host.theme());
    paintThumbs();
    paintHead();
    highlight();
  }

  async function loadScores() {
    const entries = Object.entries(model.get("_scores") || {});
    const decoded = await Promise.all(entries.map(async ([name, env]) => [name, await decodeTensor(env)]));
    if (view.disposed) return;
    grid.setScores(Object.fromEntries(decoded));
    scoreKey.replaceChildren(...decoded.slice(0, 3).map(([name]) =>
      h("span", {}, [h("i", { class: `tmk-score-${["induction", "prev_token"].includes(name) ? name : "other"}` }), `${scoreLabel(name)} score (bar: 0\u20131)`]),
    ));
    describeSelection();
  }

  // layer and head often change together (a click on a thumbnail): fetch once, for the pair.
  let queued = false;
  const onLayerHead = () => {
    if (queued) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      showHead().catch((e) => showError(root, e));
    });
  };
  const onToken = () => {
    highlight();
    if (locked() >= 0) strip.reveal(locked());
  };
  model.on("change:layer", onLayerHead);
  model.on("change:head", onLayerHead);
  model.on("change:token", onToken);
  model.on("change:height", applyHeight);

  view.built = true;
  describeSelection();
  colourKey.redraw(host.theme());
  Promise.all([
    thumbsReady.then((t) => { view.thumbs = t; paintThumbs(); }),
    loadScores(),
    showHead(),
  ]).then(() => { if (!view.disposed) markReady(root); }, (e) => showError(root, e));

  return () => {
    view.disposed = true;
    model.off("change:layer", onLayerHead);
    model.off("change:head", onLayerHead);
    model.off("change:token", onToken);
    model.off("change:height", applyHeight);
    fetcher.dispose();
    host.dispose();
  };
}

export default { render };
