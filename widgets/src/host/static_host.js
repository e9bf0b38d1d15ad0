// Mounts kit widgets in a static HTML page written by to_html(): no kernel, no network.
// Each widget's state and data are inlined as JSON; its ES module is inlined as text and
// imported from a blob: URL. A small model object stands in for the Jupyter widget model.
//
// Optional bridge (used by the live round-trip tests): when the page defines
// window.tmkBridge = {outbox: []} before boot, changes and messages from the view are pushed
// to the outbox in the Jupyter widget protocol, and tmkBridge.deliver(id, msg) feeds Python's
// messages back in.

function b64ToBytes(text) {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function bytesToB64(bytes) {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

function putBuffers(state, paths, buffers) {
  paths.forEach((path, i) => {
    let obj = state;
    for (const key of path.slice(0, -1)) obj = obj[key];
    const bytes = b64ToBytes(buffers[i]);
    obj[path[path.length - 1]] = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  });
}

/** The subset of the anywidget model API that kit widgets use. */
class StaticModel {
  constructor(id, state, onSave, onSend) {
    this.id = id;
    this.state = state;
    this.listeners = new Map();
    this.dirty = {};
    this.onSave = onSave;
    this.onSend = onSend;
  }
  get(name) {
    return this.state[name];
  }
  set(name, value) {
    if (this.state[name] === value) return;
    this.state[name] = value;
    this.dirty[name] = value;
    this.emit(`change:${name}`, value);
    this.emit("change");
  }
  save_changes() {
    const changes = this.dirty;
    this.dirty = {};
    if (Object.keys(changes).length) this.onSave(changes);
  }
  send(content, _callbacks, buffers) {
    this.onSend(content, buffers ?? []);
  }
  on(name, callback) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(callback);
  }
  off(name, callback) {
    if (!name) this.listeners.clear();
    else if (!callback) this.listeners.delete(name);
    else this.listeners.get(name)?.delete(callback);
  }
  emit(name, ...args) {
    for (const callback of [...(this.listeners.get(name) ?? [])]) callback(...args);
  }
  /** Apply a state update coming from outside (Python through the bridge): no echo. */
  receive(changes) {
    for (const [name, value] of Object.entries(changes)) {
      this.state[name] = value;
      this.emit(`change:${name}`, value);
    }
    this.emit("change");
  }
}

const modules = new Map();

function importModule(name) {
  if (!modules.has(name)) {
    const holder = [...document.querySelectorAll("script[type='application/vnd.tmk.module+json']")]
      .find((s) => s.dataset.module === name);
    if (!holder) throw new Error(`module ${name} is missing from the page`);
    const url = URL.createObjectURL(new Blob([JSON.parse(holder.textContent)], { type: "text/javascript" }));
    modules.set(name, import(url));
  }
  return modules.get(name);
}

export const models = {};

/** Mount one widget from its inlined payload {id, target, module, state, buffer_paths, buffers, blobs}. */
export async function mount(payload, bridge) {
  putBuffers(payload.state, payload.buffer_paths, payload.buffers);
  const blobs = payload.blobs ?? {};
  let model;
  const answerLocally = (content) => {
    if (content?.type !== "tmk-fetch") return;
    const blob = blobs[content.key];
    const reply = blob
      ? [{ type: "tmk-blob", key: content.key, meta: blob.meta }, [b64ToBytes(blob.data)]]
      : [{ type: "tmk-blob", key: content.key, error: `no data named ${content.key} in this page` }, []];
    queueMicrotask(() => model.emit("msg:custom", ...reply));
  };
  const onSave = (changes) => bridge?.outbox.push({ id: payload.id, method: "update", state: changes });
  const onSend = (content, buffers) =>
    bridge
      ? bridge.outbox.push({ id: payload.id, method: "custom", content, buffers: buffers.map((b) => bytesToB64(new Uint8Array(b.buffer ?? b))) })
      : answerLocally(content);
  model = new StaticModel(payload.id, payload.state, onSave, onSend);
  models[payload.id] = model;
  const mod = await importModule(payload.module);
  const widget = mod.default;
  await widget.initialize?.({ model });
  const el = document.getElementById(payload.target);
  return widget.render({ model, el });
}

/** Keep `trait` equal on two models, both ways (what ipywidgets.jslink does in Jupyter). */
export function link(a, trait, b) {
  const copy = (from, to) => () => to.set(trait, from.get(trait)); // set() ignores an unchanged value
  a.on(`change:${trait}`, copy(a, b));
  b.on(`change:${trait}`, copy(b, a));
}

function wireLinks() {
  for (const holder of document.querySelectorAll("script[type='application/vnd.tmk.links+json']")) {
    for (const [a, trait, b] of JSON.parse(holder.textContent)) {
      if (models[a] && models[b]) link(models[a], trait, models[b]);
      else console.error(`kit: cannot link ${trait} of ${a} and ${b}: a widget is missing`);
    }
  }
}

/** Mount every widget payload in the page. */
export async function boot() {
  const bridge = globalThis.tmkBridge;
  if (bridge) {
    bridge.deliver = (id, msg) => {
      const model = models[id];
      if (msg.method === "update") {
        putBuffers(msg.state, msg.buffer_paths ?? [], msg.buffers ?? []);
        model.receive(msg.state);
      } else if (msg.method === "custom") {
        model.emit("msg:custom", msg.content, (msg.buffers ?? []).map(b64ToBytes));
      }
    };
  }
  const payloads = [...document.querySelectorAll("script[type='application/vnd.tmk.widget+json']")];
  const mounting = payloads.map((s) => mount(JSON.parse(s.textContent), bridge)); // models exist once this returns
  wireLinks();
  const results = await Promise.allSettled(mounting);
  for (const r of results) if (r.status === "rejected") console.error("kit widget failed to mount:", r.reason);
}
