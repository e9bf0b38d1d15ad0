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
  return interpolate(RAMPS[theme] ?? RAMPS.light, Math.min(1, Math.max(0, t)));
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

/** A number for a legend tick: about two significant digits, no trailing zeros. */
export function tickText(value) {
  const a = Math.abs(value);
  if (a === 0) return "0";
  if (a < 1e-3 || a >= 1e5) return value.toExponential(1);
  const digits = Math.max(0, Math.min(5, 1 - Math.floor(Math.log10(a))));
  return Number(value.toFixed(digits)).toString();
}

/** Format `v` for a cell on a scale up to `vmax`: decimals chosen from vmax, so cells line up. */
export function cellText(v, vmax) {
  const m = Math.abs(vmax) || 1;
  if (m < 1e-3 || m >= 1e5) return v === 0 ? "0" : v.toExponential(0);
  const digits = Math.max(0, Math.min(4, 2 - Math.floor(Math.log10(m))));
  const text = v.toFixed(digits);
  return Number(text) === 0 ? (0).toFixed(digits) : text;
}

/**
 * A horizontal colour bar with numeric ticks from vmin to vmax. `colorAt(theme, u)` gives the CSS
 * colour at u in [0, 1] (default: the sequential scale). Returns {node, redraw(theme),
 * setRange(vmin, vmax, label?), setTicks(texts, label?)}.
 */
export function legend(label, vmin = 0, vmax = 1, ticks = 5, width = 180, colorAt = cssColor) {
  const { canvas, ctx } = hiDpiCanvas(width, 10, "tmk-legend-bar");
  const tickRow = h("div", { class: "tmk-legend-ticks", style: { width: `${width}px` } });
  const labelNode = h("span", { class: "tmk-legend-label", text: label });
  const node = h("div", { class: "tmk-legend" }, [labelNode, h("div", { class: "tmk-legend-scale" }, [canvas, tickRow])]);
  const setRange = (lo, hi, text = labelNode.textContent) => {
    labelNode.textContent = text;
    tickRow.replaceChildren();
    for (let i = 0; i < ticks; i++) tickRow.append(h("span", { text: tickText(lo + ((hi - lo) * i) / (ticks - 1)) }));
    node.setAttribute("aria-label", `${text}: colour scale from ${tickText(lo)} to ${tickText(hi)}`);
    node.dataset.min = String(lo);
    node.dataset.max = String(hi);
  };
  setRange(vmin, vmax);
  /** Replace the tick labels with `texts` (evenly spaced), e.g. for a log scale. */
  const setTicks = (texts, text = labelNode.textContent) => {
    labelNode.textContent = text;
    tickRow.replaceChildren(...texts.map((t) => h("span", { text: t })));
    node.setAttribute("aria-label", `${text}: colour scale from ${texts[0]} to ${texts[texts.length - 1]}`);
    node.dataset.min = texts[0];
    node.dataset.max = texts[texts.length - 1];
  };
  const redraw = (theme) => {
    for (let x = 0; x < width; x++) {
      ctx.fillStyle = colorAt(theme, x / (width - 1));
      ctx.fillRect(x, 0, 1, 10);
    }
  };
  return { node, redraw, setRange, setTicks };
}

// Diverging scale for signed values: zero blends into the background, positive is blue,
// negative is red (the usual RdBu of patching plots), saturating at |t| = 1.
const DIVERGING = {
  light: { neg: [[0, "#ffffff"], [0.35, "#f4a582"], [0.7, "#d6604d"], [1, "#8a1527"]], pos: [[0, "#ffffff"], [0.35, "#92c5de"], [0.7, "#4393c3"], [1, "#133f75"]] },
  dark: { neg: [[0, "#15171c"], [0.35, "#6b2b2b"], [0.7, "#c4504a"], [1, "#ffb3a0"]], pos: [[0, "#15171c"], [0.35, "#1f4a6e"], [0.7, "#3d8fd1"], [1, "#b3dcff"]] },
};

/** RGB at x along piecewise-linear (position, hex) stops. */
function interpolate(stops, x) {
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

/** RGB of the diverging scale at t in [-1, 1] (clamped). */
export function divergingColor(theme, t) {
  const side = DIVERGING[theme] ?? DIVERGING.light;
  const x = Math.max(-1, Math.min(1, Number.isFinite(t) ? t : 0));
  return interpolate(x < 0 ? side.neg : side.pos, Math.abs(x));
}

/** CSS colour of the diverging scale at t in [-1, 1]. */
export function divergingCss(theme, t) {
  return `rgb(${divergingColor(theme, t).join(",")})`;
}

/** A legend for a diverging scale from -vmax to +vmax, zero in the middle. */
export function divergingLegend(label, vmax = 1, ticks = 5, width = 180) {
  const inner = legend(label, -vmax, vmax, ticks, width, (theme, u) => divergingCss(theme, 2 * u - 1));
  return { ...inner, setMax: (m, text) => inner.setRange(-m, m, text) };
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
    focus: v("--tmk-focus"),
    bgAlt: v("--tmk-bg-alt"),
    font: v("--tmk-font"),
    mono: v("--tmk-mono"),
  };
}

/** Relative luminance (0..1) of an [r, g, b] colour: picks readable text on a cell. */
export function lightness([r, g, b]) {
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
}

const linear = (c) => {
  const s = c / 255;
  return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
};
const relativeLuminance = ([r, g, b]) => 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);

/**
 * The text colour (white or black) with the higher WCAG contrast on background `rgb`: at least
 * 4.58:1 on any colour, above the 4.5:1 that WCAG AA asks of text.
 */
export function textOn(rgb) {
  const bg = relativeLuminance(rgb);
  return 1.05 / (bg + 0.05) >= (bg + 0.05) / 0.05 ? "#ffffff" : "#000000";
}
