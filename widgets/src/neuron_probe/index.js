// kit.widgets.NeuronProbe, front end: texts shaded by a neuron's (or feature's) activation, a
// picker with search by decoded token, decoded tokens, top-activating examples, and a clamp
// slider whose effect Python computes.
import css from "./style.css";
import { mountRoot, select, markReady, showError, listeners, followHeight, tableToggle } from "../shared/widget.js";
import { createFetcher } from "../shared/fetch.js";
import { divergingLegend } from "../shared/colors.js";
import { h, num } from "../shared/dom.js";
import { visibleToken } from "../shared/tokens.js";
import { createSearch } from "./search.js";
import { createTexts } from "./texts.js";
import { createClamp } from "./clamp.js";

const TOP_EXAMPLES = 8;
let counter = 0;

const multKey = (m) => String(Number(Number(m).toPrecision(6)));

function render({ model, el }) {
  const info = model.get("_info");
  const texts = model.get("_texts");
  const offsets = [];
  texts.reduce((acc, t) => { offsets.push(acc); return acc + t.length; }, 0);
  const uid = `tmk-probe-${++counter}-${Math.random().toString(36).slice(2, 8)}`;
  const view = { acts: null, decoded: null, vmax: 1, disposed: false, built: false, request: 0 };
  const subs = listeners(model);
  const fetcher = createFetcher(model, el);
  const host = mountRoot(el, { name: "probe", css, label: "Neuron probe", model, onTheme: () => paint() });
  const { root } = host;

  const mode = () => model.get("mode");
  const unit = () => (mode() === "feature" ? model.get("feature") : model.get("neuron"));
  const nUnits = () => (mode() === "feature" ? info.features[String(model.get("layer"))] ?? 0 : info.d_mlp);
  const hasFeatures = (layer) => String(layer) in info.features;
  // what a feature of this layer is called ("SNMF feature", "SAE feature", "transcoder feature") and its legend
  const featureName = () => (info.feature_names ?? {})[String(model.get("layer"))] ?? "feature";
  const featureLegend = () => (info.feature_legends ?? {})[String(model.get("layer"))] ?? "feature activation (mlp_post \u00b7 z)";

  // --- controls
  const layerSelect = h("select", { attrs: { "aria-label": "Layer" } },
    Array.from({ length: info.n_layers }, (_, l) => h("option", { text: `layer ${l}`, attrs: { value: l } })));
  layerSelect.addEventListener("change", () => select(model, { layer: Number(layerSelect.value) }));
  const neuronButton = h("button", { class: "tmk-btn", text: "neuron", attrs: { type: "button", "data-mode": "neuron" }, on: { click: () => select(model, { mode: "neuron" }) } });
  const featureButton = h("button", { class: "tmk-btn", text: "feature", attrs: { type: "button", "data-mode": "feature" }, on: { click: () => select(model, { mode: "feature" }) } });
  const unitInput = h("input", { attrs: { type: "number", min: 0, step: 1, "aria-label": "Neuron number" } });
  const commitUnit = () => {
    const u = Math.round(Number(unitInput.value));
    if (unitInput.value !== "" && Number.isFinite(u) && u >= 0 && u < nUnits()) select(model, mode() === "feature" ? { feature: u } : { neuron: u });
    else unitInput.value = String(unit());
  };
  unitInput.addEventListener("change", commitUnit);
  unitInput.addEventListener("keydown", (event) => { if (event.key === "Enter") commitUnit(); });
  const search = createSearch({
    uid,
    label: "Search units by the tokens they promote",
    getDecoded: () => view.decoded,
    onPick: (u) => select(model, mode() === "feature" ? { feature: u } : { neuron: u }),
  });
  const readout = h("div", { class: "tmk-readout", attrs: { "aria-live": "polite" } });
  const key = divergingLegend("activation", 1);
  const decodedBox = h("div", { class: "tmk-decoded", attrs: { role: "list" } });
  const examplesBox = h("div", { class: "tmk-examples", attrs: { role: "list" } });
  const unitTitle = h("span", { class: "tmk-unit-title" });
  const texts_ = createTexts({
    texts,
    onHover: (t, p) => {
      if (t < 0) describeSelection();
      else readout.textContent = tokenText(t, p);
    },
    onSelect: (t, p) => select(model, { text: t, token: p }),
    onClear: () => select(model, { token: -1 }),
  });
  const clamp = createClamp({ uid, multiples: info.multiples, onChange: (m) => select(model, { clamp: m }) });
  clamp.setPrompt(info.prompt);
  const tableView = h("div", { attrs: { "aria-label": "Activations as a table" } });
  const tableButton = tableToggle(tableView, [texts_.node], () => buildTable());

  root.append(
    h("div", { class: "tmk-header" }, [
      h("span", { class: "tmk-title", text: "Neuron probe" }),
      unitTitle,
      h("span", { class: "tmk-spacer" }),
      tableButton,
    ]),
    h("div", { class: "tmk-controls" }, [
      layerSelect,
      h("span", { class: "tmk-seg", attrs: { role: "group", "aria-label": "Show" } }, [neuronButton, featureButton]),
      h("label", {}, ["#", unitInput]),
      search.node,
    ]),
    h("div", { class: "tmk-body" }, [
      h("div", { class: "tmk-left" }, [texts_.node, tableView, readout, key.node]),
      h("div", { class: "tmk-right" }, [
        h("div", {}, [h("h4", { text: "Promotes (decoded output)" }), decodedBox]),
        h("div", {}, [h("h4", { text: "Top-activating tokens in the texts" }), examplesBox]),
        clamp.node,
      ]),
    ]),
  );
  followHeight(root, model, subs);

  // --- values
  const actAt = (t, p) => {
    const i = offsets[t] + p;
    return view.acts.values[i * view.acts.width + unit()];
  };
  const unitName = () => `${mode() === "feature" ? featureName() : "neuron"} ${unit()} of layer ${model.get("layer")}`;
  const tokenText = (t, p) => `text ${t}, position ${p} \u00ab${visibleToken(texts[t][p])}\u00bb: ${view.acts ? num(actAt(t, p)) : "\u2026"}`;

  function describeSelection() {
    const t = model.get("text");
    const p = model.get("token");
    root.dataset.layer = String(model.get("layer"));
    root.dataset.text = String(t);
    root.dataset.token = String(p);
    texts_.mark(t, p);
    readout.textContent = p >= 0 && view.acts ? `Selected: ${tokenText(t, p)}` : "Hover a token to read its activation; click to select it.";
  }

  function describeControls() {
    layerSelect.value = String(model.get("layer"));
    neuronButton.setAttribute("aria-pressed", String(mode() === "neuron"));
    featureButton.setAttribute("aria-pressed", String(mode() === "feature"));
    featureButton.disabled = !hasFeatures(model.get("layer"));
    featureButton.title = featureButton.disabled ? "No features for this layer: pass features={layer: Z} or a trained SAE / transcoder in Python" : `Show a ${featureName()}`;
    featureButton.textContent = hasFeatures(model.get("layer")) ? featureName() : "feature";
    unitInput.max = String(nUnits() - 1);
    unitInput.value = String(unit());
    unitInput.setAttribute("aria-label", mode() === "feature" ? `${featureName()} number` : "Neuron number");
    root.dataset.featureName = hasFeatures(model.get("layer")) ? featureName() : "";
    unitTitle.textContent = unitName();
    root.dataset.mode = mode();
    root.dataset.unit = String(unit());
  }

  function paint() {
    if (!view.acts || view.disposed) return;
    texts_.paint(actAt, view.vmax, host.theme());
    key.setMax(view.vmax, mode() === "feature" ? featureLegend() : "activation (mlp_post)");
    key.redraw(host.theme());
  }

  function showDecoded() {
    const d = view.decoded;
    const u = unit();
    decodedBox.replaceChildren(...Array.from({ length: d.k }, (_, i) => h("span", { class: "tmk-tok", text: visibleToken(d.get(u, i)), attrs: { role: "listitem" } })));
  }

  function showExamples() {
    const n = offsets.length ? offsets[offsets.length - 1] + texts[texts.length - 1].length : 0;
    const best = [];
    for (let i = 0; i < n; i++) {
      const v = view.acts.values[i * view.acts.width + unit()];
      if (best.length < TOP_EXAMPLES || v > best[best.length - 1][0]) {
        best.push([v, i]);
        best.sort((a, b) => b[0] - a[0]);
        if (best.length > TOP_EXAMPLES) best.pop();
      }
    }
    examplesBox.replaceChildren(...best.map(([v, i]) => {
      let t = 0;
      while (t + 1 < offsets.length && offsets[t + 1] <= i) t++;
      const p = i - offsets[t];
      const before = texts[t].slice(Math.max(0, p - 5), p).map(visibleToken).join("");
      const row = h("button", { class: "tmk-example", attrs: { type: "button", role: "listitem", "data-text": t, "data-pos": p, "data-act": v, title: `text ${t}, position ${p}` } }, [
        h("span", { class: "tmk-ctx" }, [before, h("b", { text: visibleToken(texts[t][p]) })]),
        h("span", { class: "tmk-val", text: num(v) }),
      ]);
      row.addEventListener("click", () => {
        select(model, { text: t, token: p });
        texts_.reveal(t, p);
      });
      return row;
    }));
  }

  async function showClamp() {
    const m = model.get("clamp");
    clamp.set(m);
    root.dataset.clamp = m === null || m === undefined ? "off" : multKey(m);
    if (m === null || m === undefined) {
      clamp.showResult(null, "Tick \u201cclamp\u201d and move the slider: Python reruns the model with this unit fixed at every position of the prompt.");
      root.dataset.clampShown = "off";
      return;
    }
    const keyName = `clamp/${mode()}/${model.get("layer")}/${unit()}/${multKey(m)}`;
    clamp.showResult(null, "running the model\u2026");
    try {
      const t = await fetcher.get(keyName);
      if (view.disposed || keyName !== `clamp/${mode()}/${model.get("layer")}/${unit()}/${multKey(model.get("clamp") ?? NaN)}`) return;
      clamp.showResult({ tokens: t.meta.tokens, values: t.values, kl: t.meta.kl, value: t.meta.value });
      root.dataset.clampShown = keyName;
    } catch (e) {
      clamp.showResult(null, `This page holds clamp results for the unit it was saved with only; run the notebook for ${unitName()}.`);
      root.dataset.clampShown = "missing";
    }
  }

  async function load() {
    const request = ++view.request;
    const layer = model.get("layer");
    const feat = mode() === "feature";
    if (view.source !== `${feat}/${layer}`) view.acts = null; // the old data does not fit the new unit
    describeControls();
    describeSelection();
    let acts;
    let dec;
    try {
      [acts, dec] = await Promise.all([fetcher.get(`${feat ? "feat" : "acts"}/${layer}`), fetcher.get(`${feat ? "fdecode" : "decode"}/${layer}`)]);
    } catch (e) {
      if (request !== view.request) return;
      view.acts = null;
      readout.textContent = `The activations of layer ${layer} are not in this page; run the notebook to see them.`;
      root.dataset.loaded = "missing";
      return;
    }
    if (view.disposed || request !== view.request) return;
    view.acts = { values: acts.values, width: acts.shape[1] };
    view.source = `${feat}/${layer}`;
    const vocab = dec.meta.vocab;
    const k = dec.shape[1];
    view.decoded = { units: dec.shape[0], k, get: (u, i) => vocab[dec.values[u * k + i]] };
    let top = 0;
    const n = acts.shape[0];
    for (let i = 0; i < n; i++) top = Math.max(top, Math.abs(view.acts.values[i * view.acts.width + unit()]));
    view.vmax = top > 0 ? top : 1;
    clamp.setUnitMax(view.vmax);
    paint();
    showDecoded();
    showExamples();
    describeSelection();
    search.refresh();
    root.dataset.loaded = `${mode()}/${layer}/${unit()}`;
    await showClamp();
  }

  function buildTable() {
    if (!view.acts) return;
    const rows = texts.map((tokens, t) => h("tr", {}, [
      h("th", { text: String(t), attrs: { scope: "row" } }),
      h("td", { class: "tmk-tok", text: tokens.map((tok, p) => `${visibleToken(tok)} (${num(actAt(t, p))})`).join("  ") }),
    ]));
    tableView.replaceChildren(h("table", {}, [
      h("caption", { text: `Activation of ${unitName()} on each token` }),
      h("thead", {}, [h("tr", {}, [h("th", { text: "Text", attrs: { scope: "col" } }), h("th", { text: "Tokens (activation)", attrs: { scope: "col" } })])]),
      h("tbody", {}, rows),
    ]));
  }

  const reload = () => load().then(() => buildTable()).catch((e) => showError(root, e)); // the table is what screen readers read
  subs.on("change:layer", () => {
    if (mode() === "feature" && !hasFeatures(model.get("layer"))) select(model, { mode: "neuron" }); // as Python does
    reload();
  });
  subs.on("change:mode", reload);
  subs.on("change:neuron", () => { if (mode() === "neuron") reload(); });
  subs.on("change:feature", () => { if (mode() === "feature") reload(); });
  subs.on("change:clamp", () => showClamp().catch((e) => showError(root, e)));
  subs.on("change:text", describeSelection);
  subs.on("change:token", () => {
    describeSelection();
    if (model.get("token") >= 0) texts_.reveal(model.get("text"), model.get("token"));
  });

  load().then(() => {
    buildTable();
    view.built = true;
    if (!view.disposed) markReady(root);
  }, (e) => showError(root, e));

  return () => {
    view.disposed = true;
    subs.off();
    fetcher.dispose();
    host.dispose();
  };
}

export default { render };
