// What every kit widget view shares: its root element, theme, selection traits, ready marker.
import baseCss from "./base.css";
import { watchTheme } from "./theme.js";
import { h } from "./dom.js";

/**
 * Create the widget's root inside `el` (and only there): a prefixed class, a scoped <style>,
 * an explicit height, and theme tracking. Returns {root, theme(), dispose()}.
 */
export function mountRoot(el, { name, css, label, model, onTheme }) {
  const root = h("div", { class: `tmk-root tmk-${name}`, attrs: { role: "group", "aria-label": label } });
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
