// Tiny DOM builder. Text goes through textContent only: data never becomes markup.

/**
 * Create an element: h("div", {class: "tmk-x", text: "hi", attrs: {role: "grid"}}, [children]).
 * `on` maps event names to listeners.
 */
export function h(tag, opts = {}, children = []) {
  const node = document.createElement(tag);
  if (opts.class) node.className = opts.class;
  if (opts.text !== undefined) node.textContent = String(opts.text);
  for (const [name, value] of Object.entries(opts.attrs ?? {})) node.setAttribute(name, String(value));
  for (const [name, value] of Object.entries(opts.style ?? {})) node.style.setProperty(name, value);
  for (const [name, fn] of Object.entries(opts.on ?? {})) node.addEventListener(name, fn);
  for (const child of children) if (child) node.append(child);
  return node;
}

/** A canvas sized in CSS pixels, backed by device pixels; returns {canvas, ctx, dpr}. */
export function hiDpiCanvas(width, height, cls) {
  const dpr = Math.max(1, Math.min(3, globalThis.devicePixelRatio || 1));
  const canvas = h("canvas", { class: cls });
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { canvas, ctx, dpr };
}

/** Format a probability-like number for labels. */
export function fmt(x, digits = 2) {
  if (x === null || x === undefined || Number.isNaN(x)) return "n/a";
  return Number(x).toFixed(digits);
}

/** Scroll `container` (only it, never the page) so that `child` is visible. */
export function scrollWithin(container, child) {
  if (!container) return;
  const c = container.getBoundingClientRect();
  const r = child.getBoundingClientRect();
  if (r.top < c.top) container.scrollTop -= c.top - r.top + 4;
  else if (r.bottom > c.bottom) container.scrollTop += r.bottom - c.bottom + 4;
  if (r.left < c.left) container.scrollLeft -= c.left - r.left + 4;
  else if (r.right > c.right) container.scrollLeft += r.right - c.right + 4;
}

/** A number with `sig` significant digits (exponent notation when tiny or huge). */
export function num(x, sig = 3) {
  if (x === null || x === undefined || !Number.isFinite(x)) return "n/a";
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 1e-3 && a < 1e5) return Number(x.toPrecision(sig)).toString();
  return x.toExponential(sig - 1);
}

// The SVG namespace, taken from the HTML parser (so no URL literal sits in the bundle).
let svgNs = null;
function svgNamespace() {
  if (!svgNs) {
    const holder = document.createElement("div");
    holder.innerHTML = "<svg></svg>"; // a constant: no data ever goes through innerHTML
    svgNs = holder.firstChild.namespaceURI;
  }
  return svgNs;
}

/** Create an SVG element: s("circle", {cx: 1, r: 2}, [children]); `text` goes through textContent. */
export function s(tag, attrs = {}, children = []) {
  const node = document.createElementNS(svgNamespace(), tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = String(value);
    else if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}
