// A tooltip inside the widget's own root (never on document.body): text only, positioned
// next to a point given in the root's coordinates.
import { h } from "./dom.js";

/** Returns {node, show(lines, x, y), hide()}; `lines` are strings or [label, value] pairs. */
export function createTooltip(root) {
  const node = h("div", { class: "tmk-tooltip", attrs: { role: "tooltip" } });
  node.hidden = true;
  root.append(node);
  return {
    node,
    show(lines, clientX, clientY) {
      node.replaceChildren(...lines.map((line) =>
        Array.isArray(line)
          ? h("div", { class: "tmk-tip-row" }, [h("span", { class: "tmk-tok", text: line[0] }), h("span", { class: "tmk-tip-value", text: line[1] })])
          : h("div", { class: "tmk-tip-head", text: line }),
      ));
      node.hidden = false;
      const box = root.getBoundingClientRect();
      const tip = node.getBoundingClientRect();
      let x = clientX - box.left + 14;
      let y = clientY - box.top + 14;
      if (x + tip.width > box.width - 4) x = Math.max(4, clientX - box.left - tip.width - 10);
      if (y + tip.height > box.height - 4) y = Math.max(4, clientY - box.top - tip.height - 10);
      node.style.left = `${x}px`;
      node.style.top = `${y}px`;
    },
    hide() {
      node.hidden = true;
    },
  };
}
