// A rows x columns grid of cells on one canvas the size of the visible area (virtualised), with
// sticky row labels on the left and a sticky column header on top. Scales to thousands of
// columns: only visible cells are drawn. Mouse: hover and click; keyboard: arrows move a cursor,
// Enter or Space selects, Escape clears.
import { h } from "./dom.js";

const MAX_WIDTH = 960;
const DPR = () => Math.max(1, Math.min(3, globalThis.devicePixelRatio || 1));

/**
 * Options: rows, cols, cellW, cellH (CSS px), labelW (row label band), headerH (column header band),
 * maxHeight (of the scrolling area), label (aria), rowLabel(r) -> string,
 * drawHeader(ctx, c, x, w, h, colors), paintCell(ctx, r, c, x, y, w, h, colors),
 * onHover(r, c) (-1, -1 on leave), onSelect(r, c), onClear(), onCursor(r, c) (keyboard moves),
 * getColors() -> palette. Returns {node, scroller, redraw(), setSelected(r, c), setCursor(r, c),
 * cursor(), reveal(r, c), cellBox(r, c)}.
 */
export function createCellGrid(opts) {
  const { rows, cols, cellW, cellH, labelW, headerH } = opts;
  const totalW = labelW + cols * cellW;
  const totalH = headerH + rows * cellH;
  const canvas = h("canvas", { class: "tmk-cellgrid-canvas", attrs: { "aria-hidden": "true" } });
  const inner = h("div", { class: "tmk-cellgrid-inner", style: { width: `${totalW}px`, height: `${totalH}px` } }, [canvas]);
  const scroller = h("div", {
    class: "tmk-cellgrid",
    attrs: { tabindex: 0, role: "img", "aria-label": opts.label, "data-rows": rows, "data-cols": cols, "data-cell-w": cellW, "data-cell-h": cellH, "data-label-w": labelW, "data-header-h": headerH },
    // a definite width (at most MAX_WIDTH, never wider than the container): a long prompt scrolls
    // inside the grid instead of widening the page or a grid layout sized to its content
    style: { width: `${Math.min(totalW + 2, MAX_WIDTH)}px`, "max-width": "100%", "max-height": `${opts.maxHeight ?? 520}px` },
  }, [inner]);
  let drawn = 0;
  const state = { view: { w: 0, h: 0 }, hover: null, cursor: { r: 0, c: 0 }, selected: null, frame: 0, focused: false, showCursor: false };
  const ctx = canvas.getContext("2d");

  function resize() {
    const w = Math.max(1, Math.min(totalW, scroller.clientWidth || totalW));
    const hh = Math.max(1, Math.min(totalH, scroller.clientHeight || totalH));
    if (w === state.view.w && hh === state.view.h) return false;
    state.view = { w, h: hh };
    const dpr = DPR();
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(hh * dpr);
    canvas.style.width = `${w}px`;
    canvas.style.height = `${hh}px`;
    return true;
  }

  function outline(r, c, color, width, dash) {
    const x = labelW + c * cellW - scroller.scrollLeft;
    const y = headerH + r * cellH - scroller.scrollTop;
    ctx.save();
    ctx.beginPath();
    ctx.rect(labelW, headerH, state.view.w - labelW, state.view.h - headerH);
    ctx.clip();
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.setLineDash(dash ? [3, 2] : []);
    ctx.strokeRect(x + width / 2, y + width / 2, cellW - width, cellH - width);
    ctx.restore();
  }

  function draw() {
    state.frame = 0;
    resize();
    const colors = opts.getColors();
    const dpr = DPR();
    const { w, h: hh } = state.view;
    const sx = scroller.scrollLeft;
    const sy = scroller.scrollTop;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, hh);
    const c0 = Math.max(0, Math.floor(sx / cellW));
    const c1 = Math.min(cols - 1, Math.floor((sx + w - labelW) / cellW));
    const r0 = Math.max(0, Math.floor(sy / cellH));
    const r1 = Math.min(rows - 1, Math.floor((sy + hh - headerH) / cellH));
    // cells
    ctx.save();
    ctx.beginPath();
    ctx.rect(labelW, headerH, w - labelW, hh - headerH);
    ctx.clip();
    for (let r = r0; r <= r1; r++)
      for (let c = c0; c <= c1; c++) opts.paintCell(ctx, r, c, labelW + c * cellW - sx, headerH + r * cellH - sy, cellW, cellH, colors);
    ctx.restore();
    // column header
    ctx.save();
    ctx.beginPath();
    ctx.rect(labelW, 0, w - labelW, headerH);
    ctx.clip();
    for (let c = c0; c <= c1; c++) opts.drawHeader(ctx, c, labelW + c * cellW - sx, cellW, headerH, colors);
    ctx.restore();
    // row labels
    ctx.save();
    ctx.beginPath();
    ctx.rect(0, headerH, labelW, hh - headerH);
    ctx.clip();
    ctx.fillStyle = colors.muted;
    ctx.font = `11px ${colors.font || "sans-serif"}`;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let r = r0; r <= r1; r++) {
      const selectedRow = state.selected && state.selected.r === r;
      ctx.fillStyle = selectedRow ? colors.accent : colors.muted;
      ctx.fillText(opts.rowLabel(r), labelW - 6, headerH + (r + 0.5) * cellH - sy);
    }
    ctx.restore();
    if (state.hover) outline(state.hover.r, state.hover.c, colors.fg, 1, false);
    if (state.selected) outline(state.selected.r, state.selected.c, colors.accent, 2.5, false);
    if (state.focused && state.showCursor) outline(state.cursor.r, state.cursor.c, colors.focus || colors.accent2, 2, true);
    scroller.dataset.drawn = String(++drawn);
  }

  const redraw = () => {
    if (!state.frame) state.frame = requestAnimationFrame(draw);
  };

  function locate(event) {
    const rect = scroller.getBoundingClientRect();
    const vx = event.clientX - rect.left - scroller.clientLeft;
    const vy = event.clientY - rect.top - scroller.clientTop;
    if (vx < labelW || vy < headerH || vx >= state.view.w || vy >= state.view.h) return null;
    const c = Math.floor((vx - labelW + scroller.scrollLeft) / cellW);
    const r = Math.floor((vy - headerH + scroller.scrollTop) / cellH);
    return r >= 0 && r < rows && c >= 0 && c < cols ? { r, c } : null;
  }

  /** Scroll (the grid only) so that cell (r, c) is visible. */
  function reveal(r, c) {
    const x = c * cellW;
    const y = r * cellH;
    const visW = state.view.w - labelW;
    const visH = state.view.h - headerH;
    if (x < scroller.scrollLeft) scroller.scrollLeft = x;
    else if (x + cellW > scroller.scrollLeft + visW) scroller.scrollLeft = x + cellW - visW;
    if (y < scroller.scrollTop) scroller.scrollTop = y;
    else if (y + cellH > scroller.scrollTop + visH) scroller.scrollTop = y + cellH - visH;
  }

  scroller.addEventListener("scroll", redraw, { passive: true });
  scroller.addEventListener("mousemove", (event) => {
    const at = locate(event);
    const same = (at === null && state.hover === null) || (at && state.hover && at.r === state.hover.r && at.c === state.hover.c);
    if (same) return;
    state.hover = at;
    redraw();
    opts.onHover(at ? at.r : -1, at ? at.c : -1, event);
  });
  scroller.addEventListener("mouseleave", () => {
    if (!state.hover) return;
    state.hover = null;
    redraw();
    opts.onHover(-1, -1);
  });
  scroller.addEventListener("click", (event) => {
    const at = locate(event);
    if (!at) return;
    state.cursor = at;
    opts.onSelect(at.r, at.c);
  });
  scroller.addEventListener("focus", () => { state.focused = true; redraw(); });
  scroller.addEventListener("blur", () => { state.focused = false; redraw(); });
  scroller.addEventListener("keydown", (event) => {
    const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1], PageUp: [0, -10], PageDown: [0, 10] };
    const { r, c } = state.cursor;
    let next = null;
    if (moves[event.key]) next = { r: r + moves[event.key][0], c: c + moves[event.key][1] };
    else if (event.key === "Home") next = { r, c: 0 };
    else if (event.key === "End") next = { r, c: cols - 1 };
    else if (event.key === "Enter" || event.key === " ") opts.onSelect(r, c);
    else if (event.key === "Escape") opts.onClear?.();
    else return;
    event.preventDefault();
    if (next) {
      state.cursor = { r: Math.max(0, Math.min(rows - 1, next.r)), c: Math.max(0, Math.min(cols - 1, next.c)) };
      state.showCursor = true;
      reveal(state.cursor.r, state.cursor.c);
      opts.onCursor?.(state.cursor.r, state.cursor.c);
    }
    scroller.dataset.cursor = `${state.cursor.r}/${state.cursor.c}`;
    redraw();
  });
  const observer = new ResizeObserver(() => { if (resize()) draw(); });
  observer.observe(scroller);

  return {
    node: scroller,
    scroller,
    redraw,
    drawNow: draw,
    setSelected(r, c) {
      state.selected = r >= 0 && c >= 0 ? { r, c } : null;
      if (state.selected) state.cursor = { ...state.selected };
      redraw();
    },
    cursor: () => ({ ...state.cursor }),
    reveal,
    /** The cell's box relative to the scroller's visible area (CSS px); null when off screen. */
    cellBox(r, c) {
      const x = labelW + c * cellW - scroller.scrollLeft;
      const y = headerH + r * cellH - scroller.scrollTop;
      if (x + cellW <= labelW || y + cellH <= headerH || x >= state.view.w || y >= state.view.h) return null;
      return { x, y, w: cellW, h: cellH };
    },
    dispose() {
      observer.disconnect();
      if (state.frame) cancelAnimationFrame(state.frame);
    },
  };
}
