// kit.widgets.TrainingScrubber, front end: a training run step by step. A slider over the recorded
// steps; the losses on the plain and the repeated copy with the phase change marked; every head's
// previous-token and induction score over time and at the chosen step; the chosen head's attention
// on the probe sequence at the chosen step.
import css from "./style.css";
import { mountRoot, select, markReady, showError, listeners, followHeight, tableToggle } from "../shared/widget.js";
import { decodeTensor } from "../shared/tensor.js";
import { rampColor, legend, palette, lightness, cellText } from "../shared/colors.js";
import { createCellGrid } from "../shared/cellgrid.js";
import { createTooltip } from "../shared/tooltip.js";
import { h, s, num, hiDpiCanvas } from "../shared/dom.js";
import { visibleToken } from "../shared/tokens.js";

const stext = (x, y, text, anchor = "start") => s("text", { x, y, "text-anchor": anchor, text });

async function decodeAll(data) {
  const get = async (name) => (await decodeTensor(data[name])).values;
  const [steps, plain, rep, prevQ, indQ, patQ] = await Promise.all(
    ["steps", "loss_plain", "loss_repeated", "prev_token", "induction", "patterns"].map(get));
  const scale = (name) => data[name].scale;
  return {
    steps: Array.from(steps), plain: Array.from(plain), rep: Array.from(rep),
    prev: Float32Array.from(prevQ, (q) => q * scale("prev_token")),
    ind: Float32Array.from(indQ, (q) => q * scale("induction")),
    pat: patQ, patScale: scale("patterns"),
  };
}

function render({ model, el }) {
  const subs = listeners(model);
  const state = { d: null, disposed: false, generation: 0 };
  let ui = null; // the built view; null until the data are decoded
  const host = mountRoot(el, { name: "scrub", css, label: "Training scrubber", model, onTheme: () => paint() });
  const { root } = host;
  const tooltip = createTooltip(root);
  const body = h("div", { class: "tmk-body" });
  root.append(body);
  followHeight(root, model, subs);

  const idx = () => (state.d ? Math.max(0, state.d.steps.indexOf(model.get("step"))) : 0);
  const meta = () => model.get("_data").meta ?? {};
  const L = () => meta().n_layers;
  const H = () => meta().n_heads;
  const score = (arr, i, l, hh) => arr[(i * L() + l) * H() + hh];

  function build() {
    const data = model.get("_data");
    ui?.dispose();
    ui = null;
    body.replaceChildren();
    root.dataset.snapshots = String(data.n ?? 0);
    if (!data.n) {
      body.append(h("div", { class: "tmk-empty", attrs: { role: "status" }, text: `Waiting for the first snapshot of ${data.meta?.model || "the run"}…` }));
      markReady(root);
      return;
    }
    const generation = ++state.generation;
    decodeAll(data).then((d) => {
      if (state.disposed || generation !== state.generation) return;
      state.d = d;
      ui = buildUi(data, d);
      paint();
      markReady(root);
    }, (e) => showError(root, e));
  }

  function buildUi(data, d) {
    const n = d.steps.length;
    const tokens = data.tokens;
    const T = data.half_len;
    const slider = h("input", { attrs: { type: "range", min: 0, max: n - 1, step: 1, value: idx(), "aria-label": "Training step",
      "aria-valuetext": `step ${model.get("step")}` } });
    slider.addEventListener("input", () => select(model, { step: d.steps[Number(slider.value)] }));
    slider.addEventListener("keydown", (e) => {
      const jump = Math.max(1, Math.round(n / 10));
      const to = { PageUp: idx() + jump, PageDown: idx() - jump }[e.key];
      if (to !== undefined) {
        e.preventDefault();
        select(model, { step: d.steps[Math.min(n - 1, Math.max(0, to))] });
      }
    });
    const stepLabel = h("span", { class: "tmk-step-label" });
    const readout = h("div", { class: "tmk-readout", attrs: { "aria-live": "polite" } });
    const tableView = h("div", { attrs: { "aria-label": "History as a table" } });

    // --- loss chart (SVG)
    const W = 420, HH = 150, pad = { l: 34, r: 8, t: 8, b: 18 };
    const x = (step) => pad.l + ((step - d.steps[0]) / Math.max(1, d.steps[n - 1] - d.steps[0])) * (W - pad.l - pad.r);
    const lossMax = Math.max(...d.plain, ...d.rep, 1e-6);
    const yLoss = (v) => pad.t + (1 - v / lossMax) * (HH - pad.t - pad.b);
    const path = (ys, yf) => ys.map((v, i) => `${i ? "L" : "M"}${x(d.steps[i]).toFixed(1)},${yf(v).toFixed(1)}`).join("");
    const lossNow = s("line", { class: "tmk-now", y1: pad.t, y2: HH - pad.b });
    const phase = data.phase?.induction_crosses_half;
    const lossSvg = s("svg", { width: W, height: HH, class: "tmk-clickable", role: "img",
      "aria-label": `Loss on the plain (first) and the repeated (second) copy of the probe, by step${phase != null ? `; the phase change (best induction score of the last layer reaches 0.5) at step ${phase}` : ""}` }, [
      s("line", { class: "tmk-axis", x1: pad.l, x2: W - pad.r, y1: HH - pad.b, y2: HH - pad.b }),
      s("line", { class: "tmk-axis", x1: pad.l, x2: pad.l, y1: pad.t, y2: HH - pad.b }),
      stext(pad.l - 4, pad.t + 8, num(lossMax), "end"), stext(pad.l - 4, HH - pad.b, "0", "end"),
      stext(pad.l, HH - 4, String(d.steps[0])), stext(W - pad.r, HH - 4, String(d.steps[n - 1]), "end"),
      phase != null ? s("line", { class: "tmk-phase", x1: x(phase), x2: x(phase), y1: pad.t, y2: HH - pad.b }) : null,
      phase != null ? stext(x(phase) + 3, pad.t + 8, `induction ≥ 0.5 (step ${phase})`) : null,
      s("path", { class: "tmk-line-plain", d: path(d.plain, yLoss) }),
      s("path", { class: "tmk-line-rep", d: path(d.rep, yLoss) }),
      lossNow,
    ]);
    if (phase != null) root.dataset.phaseStep = String(phase);
    const pickStep = (event, svg) => {
      const box = svg.getBoundingClientRect();
      const px = ((event.clientX - box.left) / box.width) * W;
      let best = 0;
      for (let i = 1; i < n; i++) if (Math.abs(x(d.steps[i]) - px) < Math.abs(x(d.steps[best]) - px)) best = i;
      select(model, { step: d.steps[best] });
    };
    lossSvg.addEventListener("click", (e) => pickStep(e, lossSvg));

    // --- scores over time (one SVG per kind: every head thin, the chosen head thick)
    const SW = 200, SH = 110, sp = { l: 24, r: 6, t: 6, b: 16 };
    const xs = (step) => sp.l + ((step - d.steps[0]) / Math.max(1, d.steps[n - 1] - d.steps[0])) * (SW - sp.l - sp.r);
    const ys = (v) => sp.t + (1 - v) * (SH - sp.t - sp.b);
    const overTime = {};
    for (const [kind, arr, title] of [["prev", d.prev, "previous-token score"], ["ind", d.ind, "induction score"]]) {
      const lines = [];
      for (let l = 0; l < L(); l++) for (let hh = 0; hh < H(); hh++) {
        const pts = d.steps.map((st, i) => `${i ? "L" : "M"}${xs(st).toFixed(1)},${ys(score(arr, i, l, hh)).toFixed(1)}`).join("");
        lines.push(s("path", { class: "tmk-line-head", d: pts, "data-head": `${l}.${hh}` }));
      }
      const chosen = s("path", { class: "tmk-line-chosen" });
      const now = s("line", { class: "tmk-now", y1: sp.t, y2: SH - sp.b });
      const svg = s("svg", { width: SW, height: SH, class: "tmk-clickable", role: "img", "aria-label": `Every head's ${title} by step; the chosen head highlighted` }, [
        s("line", { class: "tmk-axis", x1: sp.l, x2: SW - sp.r, y1: SH - sp.b, y2: SH - sp.b }),
        stext(sp.l - 3, sp.t + 8, "1", "end"), stext(sp.l - 3, SH - sp.b, "0", "end"),
        stext(sp.l, SH - 4, String(d.steps[0])), stext(SW - sp.r, SH - 4, String(d.steps[n - 1]), "end"),
        ...lines, chosen, now,
      ]);
      svg.addEventListener("click", (e) => pickStep(e, svg));
      overTime[kind] = { svg, chosen, now, arr, title };
    }

    // --- score grids at the chosen step (layer x head)
    const grids = {};
    for (const [kind, arr, title] of [["prev", d.prev, "Previous-token score"], ["ind", d.ind, "Induction score"]]) {
      grids[kind] = createCellGrid({
        rows: L(), cols: H(), cellW: 40, cellH: 22, labelW: 34, headerH: 16, maxHeight: 300,
        label: `${title} of every head at the chosen step: ${L()} layers (rows) by ${H()} heads (columns). Arrow keys move, Enter chooses the head.`,
        getColors: () => palette(root),
        rowLabel: (r) => `L${r}`,
        drawHeader: (ctx, c, x0, w, hh, colors) => {
          ctx.fillStyle = colors.muted || colors.fg;
          ctx.font = "10px system-ui, sans-serif";
          ctx.textAlign = "center";
          ctx.textBaseline = "middle";
          ctx.fillText(`H${c}`, x0 + w / 2, hh / 2);
        },
        paintCell: (ctx, r, c, x0, y0, w, hh) => {
          const v = score(arr, idx(), r, c);
          const rgb = rampColor(host.theme(), v);
          ctx.fillStyle = `rgb(${rgb.join(",")})`;
          ctx.fillRect(x0, y0, w - 1, hh - 1);
          ctx.fillStyle = lightness(rgb) < 0.5 ? "#ffffff" : "#15171c";
          ctx.font = "10px system-ui, sans-serif";
          ctx.textAlign = "center";
          ctx.textBaseline = "middle";
          ctx.fillText(cellText(v, 1), x0 + w / 2, y0 + hh / 2);
        },
        onHover: (r, c, event) => {
          if (r < 0) { tooltip.hide(); return; }
          tooltip.show([`L${r}H${c} at step ${model.get("step")}`, ["previous-token", num(score(d.prev, idx(), r, c))], ["induction", num(score(d.ind, idx(), r, c))]], event.clientX, event.clientY);
        },
        onCursor: () => {},
        onSelect: (r, c) => select(model, { layer: r, head: c }),
        onClear: () => {},
      });
    }

    // --- the chosen head's pattern on the probe
    const N = tokens.length;
    const cell = Math.max(4, Math.min(10, Math.floor(300 / N)));
    const side = N * cell;
    const pat = hiDpiCanvas(side, side, "tmk-pattern");
    pat.canvas.setAttribute("role", "img");
    const patTitle = h("span", { class: "tmk-panel-title" });
    const patKey = legend("attention", 0, 1);
    const patternAt = (i, l, hh, q, k) => {
      if (k > q) return 0;
      const base = (((i * L() + l) * H() + hh) * N * (N + 1)) / 2;
      return d.pat[base + (q * (q + 1)) / 2 + k] * d.patScale;
    };
    pat.canvas.addEventListener("mousemove", (e) => {
      const box = pat.canvas.getBoundingClientRect();
      const k = Math.floor(((e.clientX - box.left) / box.width) * N);
      const q = Math.floor(((e.clientY - box.top) / box.height) * N);
      if (q < 0 || k < 0 || q >= N || k >= N) return tooltip.hide();
      tooltip.show([`query ${q} «${visibleToken(tokens[q])}» → key ${k} «${visibleToken(tokens[k])}»`,
        ["attention", num(patternAt(idx(), model.get("layer"), model.get("head"), q, k))]], e.clientX, e.clientY);
    });
    pat.canvas.addEventListener("mouseleave", () => tooltip.hide());

    const tableButton = tableToggle(tableView, [], () => buildTable());
    const swatch = (cls, label) => h("span", {}, [h("span", { class: `tmk-swatch ${cls}` }), label]);
    body.append(
      h("div", { class: "tmk-header" }, [
        h("span", { class: "tmk-title", text: `Training of ${meta().model || "a model"}` }),
        h("span", { class: "tmk-spacer" }),
        tableButton,
      ]),
      h("div", { class: "tmk-timeline" }, [slider, stepLabel]),
      h("div", { class: "tmk-panels" }, [
        h("div", { class: "tmk-panel" }, [
          h("span", { class: "tmk-panel-title", text: `Loss on the probe (nats): first copy (plain) and second copy (repeated), tokens 2..${T}` }),
          lossSvg,
          h("div", { class: "tmk-keyline" }, [swatch("tmk-sw-plain", "first copy"), swatch("tmk-sw-rep", "second copy"), phase != null ? swatch("tmk-sw-phase", "phase change") : null]),
        ]),
        h("div", { class: "tmk-panel" }, [h("span", { class: "tmk-panel-title", text: "Previous-token score, every head" }), overTime.prev.svg]),
        h("div", { class: "tmk-panel" }, [h("span", { class: "tmk-panel-title", text: "Induction score, every head" }), overTime.ind.svg]),
      ]),
      h("div", { class: "tmk-panels" }, [
        h("div", { class: "tmk-panel" }, [h("span", { class: "tmk-panel-title", text: "Previous-token score at this step" }), grids.prev.node]),
        h("div", { class: "tmk-panel" }, [h("span", { class: "tmk-panel-title", text: "Induction score at this step" }), grids.ind.node]),
        h("div", { class: "tmk-panel" }, [patTitle, pat.canvas, patKey.node]),
      ]),
      h("div", { class: "tmk-foot" }, [readout]),
      tableView,
    );
    for (const [cls, prop] of [["tmk-sw-plain", "--tmk-fg-muted"], ["tmk-sw-rep", "--tmk-accent-2"], ["tmk-sw-phase", "--tmk-accent"]]) {
      const node = body.querySelector(`.${cls}`);
      if (node) node.style.background = `var(${prop})`;
    }

    function buildTable() {
      const l = model.get("layer"), hh = model.get("head");
      const head = h("tr", {}, ["step", "loss, first copy", "loss, second copy", `L${l}H${hh} previous-token`, `L${l}H${hh} induction`].map((t) => h("th", { text: t, attrs: { scope: "col" } })));
      const rows = d.steps.map((st, i) => h("tr", {}, [h("th", { text: String(st), attrs: { scope: "row" } }),
        ...[d.plain[i], d.rep[i], score(d.prev, i, l, hh), score(d.ind, i, l, hh)].map((v) => h("td", { class: "tmk-num", text: num(v) }))]));
      tableView.replaceChildren(h("table", {}, [h("caption", { text: `Training history of ${meta().model || "the model"}` }), h("thead", {}, [head]), h("tbody", {}, rows)]));
    }

    function paintPattern() {
      const i = idx(), l = model.get("layer"), hh = model.get("head");
      const { ctx } = pat;
      ctx.fillStyle = `rgb(${rampColor(host.theme(), 0).join(",")})`;
      ctx.fillRect(0, 0, side, side);
      for (let q = 0; q < N; q++) for (let k = 0; k <= q; k++) {
        ctx.fillStyle = `rgb(${rampColor(host.theme(), patternAt(i, l, hh, q, k)).join(",")})`;
        ctx.fillRect(k * cell, q * cell, cell, cell);
      }
      // the induction stripe the head should find in the second copy: key = query - T + 1
      ctx.strokeStyle = getComputedStyle(root).getPropertyValue("--tmk-accent") || "#e8590c";
      ctx.setLineDash([2, 2]);
      ctx.beginPath();
      ctx.moveTo((N - 2 * T + 1 + 0) * cell, (N - T) * cell);
      ctx.lineTo((N - T + 1) * cell, N * cell);
      ctx.stroke();
      ctx.setLineDash([]);
      patTitle.textContent = `L${l}H${hh} on the probe at step ${model.get("step")}`;
      pat.canvas.setAttribute("aria-label", `Attention pattern of layer ${l} head ${hh} on the ${N}-token probe (a random sequence repeated twice) at step ${model.get("step")}`);
      patKey.redraw(host.theme());
    }

    function update() {
      const i = idx(), l = model.get("layer"), hh = model.get("head"), st = model.get("step");
      slider.value = String(i);
      slider.setAttribute("aria-valuetext", `step ${st}`);
      stepLabel.textContent = `step ${st} of ${d.steps[n - 1]}`;
      lossNow.setAttribute("x1", x(st));
      lossNow.setAttribute("x2", x(st));
      for (const o of Object.values(overTime)) {
        o.now.setAttribute("x1", xs(st));
        o.now.setAttribute("x2", xs(st));
        o.chosen.setAttribute("d", d.steps.map((s2, j) => `${j ? "L" : "M"}${xs(s2).toFixed(1)},${ys(score(o.arr, j, l, hh)).toFixed(1)}`).join(""));
      }
      for (const g of Object.values(grids)) { g.setSelected(l, hh); g.redraw(); }
      paintPattern();
      Object.assign(root.dataset, { step: String(st), layer: String(l), head: String(hh), snapshot: String(i) });
      const pv = score(d.prev, i, l, hh), iv = score(d.ind, i, l, hh);
      root.dataset.prevScore = pv.toFixed(3);
      root.dataset.inductionScore = iv.toFixed(3);
      readout.textContent = `Step ${st}: L${l}H${hh} previous-token ${num(pv)}, induction ${num(iv)}; loss first copy ${num(d.plain[i])}, second copy ${num(d.rep[i])} nats`;
      buildTable(); // kept current: it is what screen readers read
    }

    return {
      update,
      repaint() { for (const g of Object.values(grids)) g.redraw(); paintPattern(); },
      dispose() { for (const g of Object.values(grids)) g.dispose(); },
    };
  }

  function paint() {
    if (!ui || state.disposed) return;
    ui.repaint();
    ui.update();
  }

  subs.on("change:_data", build);
  for (const name of ["step", "layer", "head"]) subs.on(`change:${name}`, paint);
  build();

  return () => {
    state.disposed = true;
    subs.off();
    ui?.dispose();
    host.dispose();
  };
}

export default { render };
