// Light or dark: the widget's `theme` trait, else the host (JupyterLab, VS Code), else the OS.

function hostVariable(el, name) {
  return getComputedStyle(el).getPropertyValue(name).trim();
}

function luminance(color) {
  const ctx = document.createElement("canvas").getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillStyle = color; // normalises any CSS colour to #rrggbb or rgba(...)
  const s = ctx.fillStyle;
  const rgb = s.startsWith("#")
    ? [1, 3, 5].map((i) => parseInt(s.slice(i, i + 2), 16))
    : s.match(/[\d.]+/g).slice(0, 3).map(Number);
  return (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]) / 255;
}

/** The host's verdict: "light", "dark" or null when the page says nothing. */
export function hostTheme(el) {
  const body = document.body;
  const jp = body?.dataset?.jpThemeLight;
  if (jp === "true") return "light";
  if (jp === "false") return "dark";
  if (body?.classList.contains("vscode-dark") || body?.classList.contains("vscode-high-contrast")) return "dark";
  if (body?.classList.contains("vscode-light")) return "light";
  const bg = hostVariable(el, "--jp-layout-color0") || hostVariable(el, "--vscode-editor-background");
  return bg ? (luminance(bg) < 0.5 ? "dark" : "light") : null;
}

/** Resolve the `theme` setting ("auto" | "light" | "dark") for element `el`. */
export function resolveTheme(el, setting) {
  if (setting === "light" || setting === "dark") return setting;
  return hostTheme(el) ?? (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
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
    root.classList.toggle("tmk-host-colors", setting === "auto" && hostTheme(root) !== null);
    root.dataset.theme = theme;
    if (theme !== current) {
      current = theme;
      onChange(theme);
    }
  };
  const media = matchMedia("(prefers-color-scheme: dark)");
  media.addEventListener("change", apply);
  const observer = new MutationObserver(apply);
  if (document.body) observer.observe(document.body, { attributes: true, attributeFilter: ["class", "data-jp-theme-light"] });
  apply();
  return {
    refresh: apply,
    dispose() {
      media.removeEventListener("change", apply);
      observer.disconnect();
    },
  };
}
