// One head, large: a query x key heatmap on canvas with token labels (or position ticks).
import { h, hiDpiCanvas } from "../shared/dom.js";
import { poolMax } from "../shared/tensor.js";
import { MASKED } from "../shared/colors.js";
import { shortToken } from "../shared/tokens.js";

const LABEL_LIMIT = 40; // token labels on the axes up to this many tokens, position ticks beyond

function tickStep(n, size) {
  for (const step of [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000])
    if ((step * size) / n >= 30) return step;
  return 10000;
}

/**
 * Build the heatmap. Callbacks: onHover(query, key) (-1, -1 when the pointer leaves),
 * onLock(query), onKey(event) for keyboard navigation.
 * Returns {node, size, draw(m, lut, theme, colors), clear(), highlight(token, cell, colors)}.
 */
export function createHeatmap({ tokens, size = 400, onHover, onLock, onKey }) {
  const n = tokens.length;
  const labels = n <= LABEL_LIMIT;
  const left = labels ? 96 : 38;
  const top = labels ? 78 : 22;
  const width = left + size + 4;
  const height = top + size + 4;
  const cell = size / n;
  const base = hiDpiCanvas(width, height, "tmk-heat-base");
  const over = hiDpiCanvas(width, height, "tmk-heat-over");
  over.canvas.setAttribute("aria-hidden", "true");
  const node = h("div", {
    class: "tmk-heat",
    attrs: {
      tabindex: 0,
      role: "img",
      "aria-label": "Attention of the selected head: rows are query tokens, columns are key tokens. Up and down arrows move the token, Enter locks it, Escape clears.",
      "data-left": left,
      "data-top": top,
      "data-size": size,
    },
    style: { width: `${width}px`, height: `${height}px` },
  }, [base.canvas, over.canvas]);

  const locate = (event) => {
    const r = node.getBoundingClientRect();
    const x = event.clientX - r.left - left;
    const y = event.clientY - r.top - top;
    if (x < 0 || y < 0 || x >= size || y >= size) return null;
    return { q: Math.floor(y / cell), k: Math.floor(x / cell) };
  };
  node.addEventListener("mousemove", (event) => {
    const at = locate(event);
    onHover(at ? at.q : -1, at ? at.k : -1);
  });
  node.addEventListener("mouseleave", () => onHover(-1, -1));
  node.addEventListener("click", (event) => {
    const at = locate(event);
    if (at) onLock(at.q);
  });
  node.addEventListener("keydown", onKey);

  const drawAxes = (ctx, colors) => {
    ctx.fillStyle = colors.muted;
    ctx.font = `10px ${colors.mono || "monospace"}`;
    if (labels) {
      ctx.font = `11px ${colors.mono || "monospace"}`;
      ctx.fillStyle = colors.fg;
      ctx.textBaseline = "middle";
      ctx.textAlign = "right";
      tokens.forEach((t, i) => ctx.fillText(shortToken(t), left - 6, top + (i + 0.5) * cell));
      ctx.textAlign = "left";
      tokens.forEach((t, i) => {
        ctx.save();
        ctx.translate(left + (i + 0.5) * cell, top - 6);
        ctx.rotate(-Math.PI / 3);
        ctx.fillText(shortToken(t), 0, 0);
        ctx.restore();
      });
      return;
    }
    const step = tickStep(n, size);
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    for (let i = 0; i < n; i += step) ctx.fillText(String(i), left - 5, top + (i + 0.5) * cell);
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    for (let i = 0; i < n; i += step) ctx.fillText(String(i), left + (i + 0.5) * cell, top - 4);
  };

  return {
    node,
    size,
    /** Paint matrix `m` (see tensor.matrix) through colour table `lut`. */
    draw(m, lut, theme, colors) {
      const ctx = base.ctx;
      ctx.clearRect(0, 0, width, height);
      drawAxes(ctx, colors);
      const pooled = poolMax(m, Math.round(size * base.dpr));
      const off = document.createElement("canvas");
      off.width = off.height = pooled.size;
      const octx = off.getContext("2d");
      const image = octx.createImageData(pooled.size, pooled.size);
      const px = image.data;
      const [mr, mg, mb] = MASKED[theme];
      for (let i = 0; i < pooled.cells.length; i++) {
        const o = i * 4;
        if (pooled.masked[i]) {
          px[o] = mr; px[o + 1] = mg; px[o + 2] = mb;
        } else {
          const c = pooled.cells[i] * 4;
          px[o] = lut[c]; px[o + 1] = lut[c + 1]; px[o + 2] = lut[c + 2];
        }
        px[o + 3] = 255;
      }
      octx.putImageData(image, 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(off, left, top, size, size);
      ctx.strokeStyle = colors.border;
      ctx.lineWidth = 1;
      ctx.strokeRect(left - 0.5, top - 0.5, size + 1, size + 1);
    },
    /** Blank the heatmap (no head to show). */
    clear() {
      base.ctx.clearRect(0, 0, width, height);
      over.ctx.clearRect(0, 0, width, height);
    },
    /** Outline the row (what `token` attends to) and column (what attends to it) of `token`. */
    highlight(token, key, colors) {
      const ctx = over.ctx;
      ctx.clearRect(0, 0, width, height);
      if (token < 0) return;
      const band = Math.max(cell + 2, 6); // wide enough to see the row's own cells between the lines
      const offset = (i) => top + i * cell + cell / 2 - band / 2;
      ctx.lineWidth = cell >= 6 ? 1.5 : 1;
      ctx.strokeStyle = colors.accent;
      ctx.strokeRect(left, offset(token), size, band);
      ctx.strokeStyle = colors.accent2;
      ctx.strokeRect(left + token * cell + cell / 2 - band / 2, top, band, size);
      if (key >= 0) {
        ctx.strokeStyle = colors.fg;
        ctx.lineWidth = 2;
        ctx.strokeRect(left + key * cell + cell / 2 - band / 2 - 1, offset(token) - 1, band + 2, band + 2);
      }
      if (!labels) {
        ctx.fillStyle = colors.bg;
        ctx.fillRect(0, top + (token + 0.5) * cell - 7, left - 2, 14);
        ctx.fillStyle = colors.accent;
        ctx.font = `bold 10px ${colors.mono || "monospace"}`;
        ctx.textAlign = "right";
        ctx.textBaseline = "middle";
        ctx.fillText(String(token), left - 5, top + (token + 0.5) * cell);
      }
    },
  };
}
