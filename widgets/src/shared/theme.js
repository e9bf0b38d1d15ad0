// Light or dark: the widget's `theme` trait, else the host's, else the OS.
//
// The host's theme, first found wins: a theme handed down by the page that embeds this one
// (<html data-tmk-host-theme>, set for an exported notebook's offline copies), JupyterLab and
// Notebook 7 (body[data-jp-theme-light]), VS Code (body.vscode-dark / vscode-light, or its CSS
// variables), then the colour actually behind the view (marimo, nbconvert pages, any page that
// paints a background), then the page's declared color-scheme: a page that declares only light
// (or nothing, as most pages) is light even when the OS is dark.

function hostVariable(el, name) {
  return getComputedStyle(el).getPropertyValue(name).trim();
}

function rgbOf(color) {
  const ctx = document.createElement("canvas").getContext("2d");
  ctx.fillStyle = "rgba(0, 0, 0, 0)";
  ctx.fillStyle = color; // normalises any CSS colour to #rrggbb or rgba(...)
  const s = ctx.fillStyle;
  if (s.startsWith("#")) return [...[1, 3, 5].map((i) => parseInt(s.slice(i, i + 2), 16)), 1];
  const parts = s.match(/[\d.]+/g).map(Number);
  return [parts[0], parts[1], parts[2], parts.length > 3 ? parts[3] : 1];
}

function luminance([r, g, b]) {
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
}

/** The parent element, crossing out of a shadow root to its host (marimo renders views in one). */
function parentOf(node) {
  if (node.parentElement) return node.parentElement;
  const root = node.getRootNode?.();
  return root && root.host ? root.host : null;
}

/** "light" or "dark" from the first opaque background behind `el`; null when every one is transparent. */
function backgroundBehind(el) {
  for (let node = parentOf(el); node; node = parentOf(node)) {
    const rgba = rgbOf(getComputedStyle(node).backgroundColor);
    if (rgba[3] > 0.5) return luminance(rgba) < 0.5 ? "dark" : "light";
  }
  return null;
}

/** The page's own scheme when it paints no background: "light", "dark", or null (follows the OS). */
function declaredScheme() {
  const scheme = getComputedStyle(document.documentElement).colorScheme || "normal";
  const light = scheme.includes("light");
  const dark = scheme.includes("dark");
  if (dark && light) return null;
  return dark ? "dark" : "light";
}

/** The host's verdict: "light", "dark" or null when the host leaves it to the OS. */
export function hostTheme(el) {
  const handed = document.documentElement.dataset.tmkHostTheme;
  if (handed === "light" || handed === "dark") return handed;
  const body = document.body;
  const jp = body?.dataset?.jpThemeLight;
  if (jp === "true") return "light";
  if (jp === "false") return "dark";
  if (body?.classList.contains("vscode-dark") || body?.classList.contains("vscode-high-contrast")) return "dark";
  if (body?.classList.contains("vscode-light")) return "light";
  const bg = hostVariable(el, "--jp-layout-color0") || hostVariable(el, "--vscode-editor-background");
  if (bg) return luminance(rgbOf(bg)) < 0.5 ? "dark" : "light";
  return backgroundBehind(el) ?? declaredScheme();
}

/** Resolve the `theme` setting ("auto" | "light" | "dark") for element `el`. */
export function resolveTheme(el, setting) {
  if (setting === "light" || setting === "dark") return setting;
  return hostTheme(el) ?? (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
}

/** Whether the host's own colours (JupyterLab or VS Code variables) are there to follow. */
function hasHostColors(el) {
  return Boolean(hostVariable(el, "--jp-layout-color0") || hostVariable(el, "--vscode-editor-background"));
}

/**
 * Keep `root` themed: sets tmk-theme-light/dark (and tmk-host-colors when the host's colours
 * are followed), calls onChange(theme) after each change. Returns a cleanup function.
 */
export function watchTheme(root, getSetting, onChange) {
  let current = null;
  const apply = () => {
    const setting = getSetting();
    const theme = resolveTheme(root, setting);
    root.classList.toggle("tmk-theme-dark", theme === "dark");
    root.classList.toggle("tmk-theme-light", theme === "light");
    root.classList.toggle("tmk-host-colors", setting === "auto" && hasHostColors(root));
    root.dataset.theme = theme;
    if (theme !== current) {
      current = theme;
      onChange(theme);
    }
  };
  const media = matchMedia("(prefers-color-scheme: dark)");
  media.addEventListener("change", apply);
  // hosts switch themes by attributes on <html> or <body> (class, style, data-*)
  const observer = new MutationObserver(apply);
  const watched = { attributes: true, attributeFilter: ["class", "style", "data-theme", "data-jp-theme-light", "data-tmk-host-theme"] };
  observer.observe(document.documentElement, watched);
  if (document.body) observer.observe(document.body, watched);
  apply();
  return {
    refresh: apply,
    dispose() {
      media.removeEventListener("change", apply);
      observer.disconnect();
    },
  };
}
