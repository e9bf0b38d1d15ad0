// kit.widgets.PatchingHeatmap, front end: a layer x position (or layer x head) grid of patching
// or causal-tracing results on a diverging colour scale centred on zero.
import css from "./style.css";
import { mountRoot, select, markReady, showError, listeners, followHeight, tableToggle } from "../shared/widget.js";
import { decodeTensor } from "../shared/tensor.js";
import { divergingColor, divergingLegend, palette, cellText, textOn } from "../shared/colors.js";
import { createCellGrid } from "../shared/cellgrid.js";
import { createTooltip } from "../shared/tooltip.js";
import { h, num } from "../shared/dom.js";
import { visibleToken } from "../shared/tokens.js";
import { tokenHeader } from "../shared/axis.js";

function render({ model, el }) {
  const labels = model.get("_labels");
  const grids = model.get("_grids");
  const names = Object.keys(grids);
  const first = grids[names[0]];
  const [nLayers, nCols] = first.values.shape;
  const byHead = labels.axis === "head";
  const tokens = labels.tokens;
  const corrupted = labels.corrupted;
  const subject = new Set(labels.subject ?? []);
  const differs = (c) => corrupted && corrupted[c] !== tokens[c];
  const view = { decoded: {}, disposed: false, built: false };
  const subs = listeners(model);

  const host = mountRoot(el, { name: "patch", css, label: labels.title || "Patching heatmap", model, onTheme: () => repaint() });
  const { root } = host;
  const tooltip = createTooltip(root);

  // --- header: title, grid switch, table button
  const switchButtons = names.length > 1
    ? names.map((name) => h("button", { class: "tmk-btn", text: name, attrs: { type: "button", "data-view": name, "aria-pressed": "false" }, on: { click: () => select(model, { view: name }) } }))
    : [];
  const desc = h("div", { class: "tmk-desc" });
  const tableView = h("div", { attrs: { "aria-label": "Values as a table" } });
  const readout = h("div", { class: "tmk-readout", attrs: { "aria-live": "polite" } });
  const key = divergingLegend("value", 1);

  // --- grid geometry
  const cellW = byHead ? Math.max(30, Math.min(48, Math.floor(560 / nCols))) : Math.max(16, Math.min(56, Math.floor(680 / nCols)));
  const cellH = nLayers <= 16 ? 22 : 18;
  const header = tokenHeader({
    tokens,
    cellW,
    mark: (c) => (subject.has(c) ? "*" : ""),
    accent2: (c) => subject.has(c),
    below: !byHead && corrupted && tokens.some((_, c) => differs(c)) ? { height: 16, text: (c) => (differs(c) ? corrupted[c] : null) } : null,
    selected: () => (byHead ? model.get("head") : model.get("token")),
  });
  const grid = createCellGrid({
    rows: nLayers,
    cols: nCols,
    cellW,
    cellH,
    labelW: 40,
    headerH: header.height,
    maxHeight: 540,
    label: `${labels.title || "Patching"}: ${nLayers} layers (rows) by ${nCols} ${byHead ? "heads" : "positions"} (columns). Arrow keys move, Enter selects the cell, Escape clears.`,
    getColors: () => palette(root),
    rowLabel: (r) => `L${r}`,
    drawHeader: header.draw,
    paintCell: (ctx, r, c, x, y, w, hh) => {
      const g = current();
      if (!g) return;
      const v = g.values[r * nCols + c];
      const rgb = divergingColor(host.theme(), v / g.vmax);
      ctx.fillStyle = `rgb(${rgb.join(",")})`;
      ctx.fillRect(x, y, w - 1, hh - 1);
      if (w >= 36 && hh >= 16) {
        ctx.fillStyle = textOn(rgb);
        ctx.font = "10px system-ui, sans-serif";
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        ctx.fillText(cellText(v, g.vmax), x + w / 2, y + hh / 2);
      }
    },
    onHover: (r, c, event) => {
      if (r < 0) {
        tooltip.hide();
        describeSelection();
        return;
      }
      const lines = describeCell(r, c);
      tooltip.show(lines.tip, event.clientX, event.clientY);
      readout.textContent = lines.text;
    },
    onCursor: (r, c) => { readout.textContent = describeCell(r, c).text; },
    onSelect: (r, c) => select(model, byHead ? { layer: r, head: c } : { layer: r, token: c }),
    onClear: () => { if (!byHead) select(model, { token: -1 }); },
  });

  const tableButton = tableToggle(tableView, [grid.node], () => buildTable());
  root.append(
    h("div", { class: "tmk-header" }, [
      h("span", { class: "tmk-title", text: labels.title || "Patching" }),
      switchButtons.length ? h("span", { class: "tmk-seg", attrs: { role: "group", "aria-label": "Which result" } }, switchButtons) : null,
      h("span", { class: "tmk-spacer" }),
      tableButton,
    ]),
    desc,
    grid.node,
    tableView,
    h("div", { class: "tmk-foot" }, [readout, key.node]),
  );
  followHeight(root, model, subs);

  // --- data and text
  function current() {
    return view.decoded[model.get("view")] ?? null;
  }

  function metricAt(g, v) {
    if (g.clean === null || g.clean === undefined) return null;
    if (g.value === "normalized") return g.corrupted + v * (g.clean - g.corrupted);
    if (g.value === "effect") return g.corrupted + v;
    return v;
  }

  function colName(c) {
    if (byHead) return `head ${c}`;
    let text = `position ${c} \u00ab${visibleToken(tokens[c])}\u00bb`;
    if (differs(c)) text += ` (corrupted \u00ab${visibleToken(corrupted[c])}\u00bb)`;
    if (subject.has(c)) text += " (subject, noised)";
    return text;
  }

  function describeCell(r, c) {
    const g = current();
    const v = g.values[r * nCols + c];
    const m = metricAt(g, v);
    const metric = m === null || g.value === "raw" ? "" : ` \u00b7 ${g.metric} = ${num(m)}`;
    const text = `Layer ${r} \u00b7 ${colName(c)}: ${num(v)} (${g.label})${metric}`;
    const tip = [`Layer ${r} \u00b7 ${byHead ? `head ${c}` : `${c} \u00ab${visibleToken(tokens[c])}\u00bb`}`, [g.label, num(v)]];
    if (differs(c)) tip.push(["corrupted token", visibleToken(corrupted[c])]);
    if (m !== null && g.value !== "raw") tip.push([g.metric, num(m)]);
    return { text, tip };
  }

  function describeSelection() {
    const layer = model.get("layer");
    const col = byHead ? model.get("head") : model.get("token");
    root.dataset.layer = String(layer);
    root.dataset.token = String(model.get("token"));
    root.dataset.head = String(model.get("head"));
    root.dataset.view = model.get("view");
    grid.setSelected(col >= 0 ? layer : -1, col);
    if (!current()) return;
    readout.textContent = col >= 0 ? `Selected: ${describeCell(layer, col).text}` : "Hover a cell for its value; click one to select that layer and position.";
  }

  function describeView() {
    const g = current();
    if (!g) return;
    for (const b of switchButtons) b.setAttribute("aria-pressed", String(b.dataset.view === model.get("view")));
    const parts = [`${g.label}`];
    if (g.clean !== null && g.clean !== undefined) parts.push(`${g.metric}: clean ${num(g.clean)}, corrupted ${num(g.corrupted)}`);
    if (g.kind) parts.push(`kind: ${g.kind}`);
    desc.textContent = parts.join(" \u00b7 ");
    key.setMax(g.vmax, g.label);
    key.redraw(host.theme());
    root.dataset.vmax = String(g.vmax);
  }

  function buildTable() {
    const g = current();
    if (!g) return;
    const head = h("tr", {}, [h("th", { text: "Layer", attrs: { scope: "col" } }), ...tokens.map((t, c) =>
      h("th", { attrs: { scope: "col" } }, [h("span", { class: "tmk-tok", text: byHead ? t : visibleToken(t) }), byHead ? "" : ` (${c})`]))]);
    const rows = [];
    for (let r = 0; r < nLayers; r++) {
      const cells = [h("th", { text: `L${r}`, attrs: { scope: "row" } })];
      for (let c = 0; c < nCols; c++) cells.push(h("td", { class: "tmk-num", text: num(g.values[r * nCols + c]) }));
      rows.push(h("tr", {}, cells));
    }
    tableView.replaceChildren(h("table", {}, [h("caption", { text: `${labels.title || "Patching"}: ${g.label}` }), h("thead", {}, [head]), h("tbody", {}, rows)]));
  }

  function repaint() {
    if (!view.built || view.disposed) return;
    describeView();
    grid.redraw();
  }

  const onView = () => {
    repaint();
    describeSelection();
    buildTable(); // kept current: it is what screen readers read
  };
  subs.on("change:view", onView);
  subs.on("change:layer", describeSelection);
  subs.on("change:token", () => { describeSelection(); grid.redraw(); });
  subs.on("change:head", () => { describeSelection(); grid.redraw(); });

  Promise.all(names.map(async (name) => {
    const g = grids[name];
    view.decoded[name] = { ...g, values: (await decodeTensor(g.values)).values };
  })).then(() => {
    if (view.disposed) return;
    view.built = true;
    repaint();
    describeSelection();
    grid.drawNow();
    if (!byHead && model.get("token") >= 0) grid.reveal(model.get("layer"), model.get("token"));
    buildTable();
    markReady(root);
  }, (e) => showError(root, e));

  return () => {
    view.disposed = true;
    subs.off();
    grid.dispose();
    host.dispose();
  };
}

export default { render };
