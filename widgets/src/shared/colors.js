// Sequential colour scales as 256-entry RGBA lookup tables, and the numeric legend.
import { h, hiDpiCanvas } from "./dom.js";

// Anchor colours (position, hex) of the sequential scale per theme: low values blend into
// the background, high values stand out.
const RAMPS = {
  light: [[0, "#ffffff"], [0.15, "#d9e7f5"], [0.4, "#8dbbe0"], [0.7, "#3a7dbf"], [1, "#0b2d66"]],
  dark: [[0, "#15171c"], [0.15, "#1d3550"], [0.4, "#2d6e96"], [0.7, "#5db7b9"], [1, "#f2f5a8"]],
};
export const MASKED = { light: [236, 238, 242], dark: [33, 36, 43] };

function hexRgb(hex) {
  return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
}

/** RGB of the scale at t in [0, 1]. */
export function rampColor(theme, t) {
  const stops = RAMPS[theme] ?? RAMPS.light;
  const x = Math.min(1, Math.max(0, t));
  for (let i = 1; i < stops.length; i++) {
    const [p1, c1] = stops[i];
    const [p0, c0] = stops[i - 1];
    if (x <= p1) {
      const u = (x - p0) / (p1 - p0);
      const a = hexRgb(c0);
      const b = hexRgb(c1);
      return a.map((v, j) => Math.round(v + (b[j] - v) * u));
    }
  }
  return hexRgb(stops[stops.length - 1][1]);
}

/**
 * Lookup table from a quantised value q (0..255) to RGBA, for values q * scale shown on a
 * scale from 0 to vmax.
 */
export function quantisedLut(theme, scale, vmax = 1) {
  const lut = new Uint8ClampedArray(256 * 4);
  for (let q = 0; q < 256; q++) {
    const [r, g, b] = rampColor(theme, (q * scale) / vmax);
    lut.set([r, g, b, 255], q * 4);
  }
  return lut;
}

/** CSS colour string of the scale at t. */
export function cssColor(theme, t, alpha = 1) {
  const [r, g, b] = rampColor(theme, t);
  return alpha === 1 ? `rgb(${r},${g},${b})` : `rgba(${r},${g},${b},${alpha})`;
}

/** A horizontal colour bar with numeric ticks from vmin to vmax. Returns {node, redraw(theme)}. */
export function legend(label, vmin = 0, vmax = 1, ticks = 5, width = 180) {
  const { canvas, ctx } = hiDpiCanvas(width, 10, "tmk-legend-bar");
  const tickRow = h("div", { class: "tmk-legend-ticks", style: { width: `${width}px` } });
  for (let i = 0; i < ticks; i++) {
    const value = vmin + ((vmax - vmin) * i) / (ticks - 1);
    tickRow.append(h("span", { text: Number(value.toFixed(2)).toString() }));
  }
  const node = h("div", { class: "tmk-legend", attrs: { "aria-label": `${label}: colour scale from ${vmin} to ${vmax}` } }, [
    h("span", { class: "tmk-legend-label", text: label }),
    h("div", { class: "tmk-legend-scale" }, [canvas, tickRow]),
  ]);
  const redraw = (theme) => {
    for (let x = 0; x < width; x++) {
      ctx.fillStyle = cssColor(theme, x / (width - 1));
      ctx.fillRect(x, 0, 1, 10);
    }
  };
  return { node, redraw };
}

/** The theme's colours as resolved on `root` (for canvas drawing). */
export function palette(root) {
  const cs = getComputedStyle(root);
  const v = (name) => cs.getPropertyValue(name).trim();
  return {
    bg: cs.backgroundColor,
    fg: v("--tmk-fg"),
    muted: v("--tmk-fg-muted"),
    border: v("--tmk-border"),
    accent: v("--tmk-accent"),
    accent2: v("--tmk-accent-2"),
    font: v("--tmk-font"),
    mono: v("--tmk-mono"),
  };
}

/** Relative luminance (0..1) of an [r, g, b] colour: picks readable text on a cell. */
export function lightness([r, g, b]) {
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
}
