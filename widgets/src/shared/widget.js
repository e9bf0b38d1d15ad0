// What every kit widget view shares: its root element, theme, selection traits, ready marker.
import baseCss from "./base.css";
import { watchTheme } from "./theme.js";
import { h } from "./dom.js";

/**
 * Create the widget's root inside `el` (and only there): a prefixed class, a scoped <style>,
 * an explicit height, and theme tracking. Returns {root, theme(), dispose()}.
 */
export function mountRoot(el, { name, css, label, model, onTheme }) {
  // data-lm-suppress-shortcuts: Lumino hosts (Notebook 7, JupyterLab) leave keys pressed inside
  // the view to the view, instead of reading them as notebook shortcuts (arrows, Enter, Space).
  const root = h("div", {
    class: `tmk-root tmk-${name}`,
    attrs: { role: "group", "aria-label": label, "data-lm-suppress-shortcuts": "true" },
  });
  root.append(h("style", { text: baseCss + "\n" + css }));
  el.append(root);
  let theme = "light";
  const watcher = watchTheme(root, () => model.get("theme") || "auto", (t) => {
    theme = t;
    onTheme?.(t);
  });
  const onSetting = () => watcher.refresh();
  model.on("change:theme", onSetting);
  return {
    root,
    theme: () => theme,
    dispose() {
      watcher.dispose();
      model.off("change:theme", onSetting);
      root.remove();
    },
  };
}

/** Set selection traits (layer, head, token) from the view and sync them to Python. */
export function select(model, changes) {
  let changed = false;
  for (const [name, value] of Object.entries(changes)) {
    if (model.get(name) !== value) {
      model.set(name, value);
      changed = true;
    }
  }
  if (changed) model.save_changes();
}

/** Mark the root ready once the browser has painted (tests and benchmarks wait on this). */
export function markReady(root) {
  requestAnimationFrame(() =>
    requestAnimationFrame(() => {
      root.dataset.readyMs = performance.now().toFixed(1);
      root.dataset.ready = "1";
    }),
  );
}

/** Show an error inside the widget (as text). */
export function showError(root, error) {
  root.dataset.error = "1";
  root.append(h("div", { class: "tmk-error", attrs: { role: "alert" }, text: `Widget error: ${error?.message ?? error}` }));
}

/** model.on with bookkeeping: `off()` removes every listener added through it. */
export function listeners(model) {
  const subs = [];
  return {
    on(name, fn) {
      model.on(name, fn);
      subs.push([name, fn]);
    },
    off() {
      for (const [name, fn] of subs.splice(0)) model.off(name, fn);
    },
  };
}

/** Apply the `height` trait to the root: a fixed height (scrolling inside) or the natural one. */
export function followHeight(root, model, subs) {
  const apply = () => {
    const requested = model.get("height");
    root.style.height = requested > 0 ? `${requested}px` : "";
    root.style.overflow = requested > 0 ? "auto" : "";
  };
  apply();
  subs.on("change:height", apply);
}

/**
 * A "Table" toggle: the table is for screen readers only (visually hidden) until pressed, then
 * it replaces `visual`. `build()` fills the table the first time it is needed. Returns the button.
 */
export function tableToggle(tableView, visual, build) {
  const button = document.createElement("button");
  button.className = "tmk-btn tmk-table-btn";
  button.type = "button";
  button.textContent = "Table";
  button.title = "Show the numbers as a table";
  button.setAttribute("aria-pressed", "false");
  tableView.classList.add("tmk-table-view", "tmk-sr-only");
  button.addEventListener("click", () => {
    const show = button.getAttribute("aria-pressed") !== "true";
    if (show) build?.();
    button.setAttribute("aria-pressed", String(show));
    tableView.classList.toggle("tmk-sr-only", !show);
    for (const node of [].concat(visual)) node.hidden = show;
  });
  return button;
}
