// The layers x heads grid of small attention thumbnails.
import { h, fmt, scrollWithin } from "../shared/dom.js";
import { matrix, poolMax } from "../shared/tensor.js";
import { MASKED } from "../shared/colors.js";

const SCORE_LABELS = { induction: "induction", prev_token: "previous-token" };
export const scoreLabel = (name) => SCORE_LABELS[name] ?? name.replace(/_/g, " ");

/**
 * Thumbnail edge in CSS pixels: about 360 px of heads per row and, when it can, every layer
 * within `height` (each row also holds `bars` score bars).
 */
export function thumbSize(nLayers, nHeads, height, bars) {
  const byWidth = Math.floor(360 / nHeads) - 3;
  const byHeight = Math.floor((height - 40) / nLayers) - 3 - (bars ? 3 + 4 * bars : 0);
  return Math.max(18, Math.min(64, byWidth, byHeight));
}

/**
 * Build the grid. `onSelect(layer, head)` fires on click, Enter or Space.
 * Returns {node, draw(thumbs, lut, theme), setScores(scores), setSelected(l, h)}.
 */
export function createGrid({ nLayers, nHeads, uid, height, bars, onSelect }) {
  const px = thumbSize(nLayers, nHeads, height, bars);
  const cursor = { layer: 0, head: 0 };
  const grid = h("div", {
    class: "tmk-grid",
    attrs: {
      role: "grid",
      tabindex: 0,
      "aria-label": `Attention heads: ${nLayers} layers (rows) by ${nHeads} heads (columns). Arrow keys move, Enter zooms.`,
    },
    style: { "grid-template-columns": `22px repeat(${nHeads}, ${px}px)` },
  });
  const header = [h("div", { class: "tmk-grid-head", attrs: { role: "columnheader" } })];
  for (let hd = 0; hd < nHeads; hd++) header.push(h("div", { class: "tmk-grid-label tmk-grid-head", text: `H${hd}`, attrs: { role: "columnheader" } }));
  grid.append(h("div", { attrs: { role: "row" }, style: { display: "contents" } }, header));

  const cells = [];
  for (let l = 0; l < nLayers; l++) {
    const row = [h("div", { class: "tmk-grid-label", text: `L${l}`, attrs: { role: "rowheader" } })];
    cells.push([]);
    for (let hd = 0; hd < nHeads; hd++) {
      const canvas = h("canvas");
      const bars = h("div", { class: "tmk-bars" });
      const cell = h("div", {
        class: "tmk-thumb",
        attrs: { role: "gridcell", id: `${uid}-l${l}h${hd}`, "aria-selected": "false", "data-layer": l, "data-head": hd },
        style: { width: `${px}px` },
      }, [canvas, bars]);
      cells[l].push({ cell, canvas, bars });
      row.push(cell);
    }
    grid.append(h("div", { attrs: { role: "row" }, style: { display: "contents" } }, row));
  }

  const moveCursor = (l, hd) => {
    cells[cursor.layer][cursor.head].cell.classList.remove("tmk-cursor");
    cursor.layer = Math.max(0, Math.min(nLayers - 1, l));
    cursor.head = Math.max(0, Math.min(nHeads - 1, hd));
    const target = cells[cursor.layer][cursor.head].cell;
    target.classList.add("tmk-cursor");
    grid.setAttribute("aria-activedescendant", target.id);
    scrollWithin(grid.parentElement, target);
  };

  grid.addEventListener("click", (event) => {
    const cell = event.target.closest?.(".tmk-thumb");
    if (!cell || !grid.contains(cell)) return;
    const l = Number(cell.dataset.layer);
    const hd = Number(cell.dataset.head);
    moveCursor(l, hd);
    onSelect(l, hd);
  });
  grid.addEventListener("keydown", (event) => {
    const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    if (moves[event.key]) {
      const [dl, dh] = moves[event.key];
      moveCursor(cursor.layer + dl, cursor.head + dh);
    } else if (event.key === "Home") moveCursor(cursor.layer, 0);
    else if (event.key === "End") moveCursor(cursor.layer, nHeads - 1);
    else if (event.key === "Enter" || event.key === " ") onSelect(cursor.layer, cursor.head);
    else return;
    event.preventDefault();
  });

  let scores = {};
  const describe = (l, hd) => {
    const parts = [`Layer ${l}, head ${hd}`];
    for (const [name, t] of Object.entries(scores)) parts.push(`${scoreLabel(name)} score ${fmt(t.values[l * nHeads + hd])}`);
    return parts.join("; ");
  };
  const relabel = () => {
    for (let l = 0; l < nLayers; l++)
      for (let hd = 0; hd < nHeads; hd++) {
        const { cell } = cells[l][hd];
        cell.setAttribute("aria-label", describe(l, hd));
        cell.title = describe(l, hd);
      }
  };
  relabel();

  return {
    node: grid,
    /** Draw every thumbnail from the decoded [layer, head, s, s] tensor through `lut`. */
    draw(thumbs, lut, theme) {
      const dpr = Math.max(1, Math.min(3, globalThis.devicePixelRatio || 1));
      const target = Math.round(px * dpr);
      const masked = MASKED[theme];
      for (let l = 0; l < nLayers; l++)
        for (let hd = 0; hd < nHeads; hd++) {
          const pooled = poolMax(matrix(thumbs, l * nHeads + hd), target);
          const { canvas } = cells[l][hd];
          canvas.width = canvas.height = pooled.size;
          canvas.style.width = canvas.style.height = `${px}px`;
          canvas.style.imageRendering = "pixelated";
          const ctx = canvas.getContext("2d");
          const image = ctx.createImageData(pooled.size, pooled.size);
          const px4 = image.data;
          for (let i = 0; i < pooled.cells.length; i++) {
            if (pooled.masked[i]) px4.set([masked[0], masked[1], masked[2], 255], i * 4);
            else px4.set(lut.subarray(pooled.cells[i] * 4, pooled.cells[i] * 4 + 4), i * 4);
          }
          ctx.putImageData(image, 0, 0);
        }
    },
    /** Show head scores ({name: decoded [layer, head] tensor}) as bars and in labels. */
    setScores(next) {
      scores = next;
      const names = Object.keys(scores).slice(0, 3);
      for (let l = 0; l < nLayers; l++)
        for (let hd = 0; hd < nHeads; hd++) {
          const { bars } = cells[l][hd];
          bars.replaceChildren(...names.map((name) => {
            const value = scores[name].values[l * nHeads + hd];
            const width = Number.isFinite(value) ? Math.max(0, Math.min(1, value)) * 100 : 0;
            const known = name in SCORE_LABELS ? name : "other";
            return h("div", { class: `tmk-bar tmk-score-${known}`, style: { width: `${width}%` } });
          }));
        }
      relabel();
    },
    setSelected(l, hd) {
      for (const row of cells) for (const { cell } of row) cell.setAttribute("aria-selected", "false");
      cells[l]?.[hd]?.cell.setAttribute("aria-selected", "true");
      moveCursor(l, hd);
    },
    scoreText(l, hd) {
      return Object.entries(scores).map(([name, t]) => `${scoreLabel(name)} ${fmt(t.values[l * nHeads + hd])}`).join(" \u00b7 ");
    },
    get px() {
      return px;
    },
  };
}
