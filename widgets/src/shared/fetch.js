// Lazy data: the view asks Python for a named blob (e.g. "layer/3"); Python answers with a
// tensor envelope and one binary buffer. The static HTML host answers the same request from
// data inlined in the page. A small view also keeps every blob in its state (`_saved_blobs`):
// a notebook reopened without its kernel restores that state, and the view asks nobody.
import { decodeTensor } from "./tensor.js";
import { h } from "./dom.js";

/** How long a request may wait before the view says what to do if no kernel is there to answer. */
export const WAIT_NOTE_MS = 5000;

/**
 * Returns {get(key): Promise<decoded tensor>, dispose()}; results are cached per view. Each result
 * also carries `meta`, the blob's whole description (which may hold more than the envelope).
 * `el`: the view's element, where a request left unanswered for WAIT_NOTE_MS puts a note (removed
 * when the answers come: a busy kernel answers late, a notebook reopened without one never does).
 */
export function createFetcher(model, el) {
  const cache = new Map();
  const pending = new Map();
  let note = null;
  let timer = null;
  const settle = () => {
    if (pending.size) return;
    clearTimeout(timer);
    timer = null;
    note?.remove();
    note = null;
  };
  const waitNote = () => {
    timer = null;
    const root = el?.querySelector?.(".tmk-root");
    if (!pending.size || !root || note) return;
    note = h("div", {
      class: "tmk-wait-note",
      attrs: { role: "status" },
      text: "Waiting for Python for part of this view. If this notebook was reopened without running it, " +
        "run this cell again; its exported HTML page (jupyter nbconvert --to html) works without Python.",
    });
    root.append(note);
  };
  const onMessage = (content, buffers) => {
    if (!content || content.type !== "tmk-blob" || !pending.has(content.key)) return;
    const { resolve, reject } = pending.get(content.key);
    pending.delete(content.key);
    settle();
    if (content.error) reject(new Error(content.error));
    else decodeTensor({ ...content.meta, data: buffers[0] }).then((t) => resolve({ ...t, meta: content.meta }), reject);
  };
  model.on("msg:custom", onMessage);
  return {
    get(key) {
      if (!cache.has(key)) {
        const saved = (model.get("_saved_blobs") || {})[key];
        if (saved && saved.data) {
          cache.set(key, decodeTensor({ ...saved.meta, data: saved.data }).then((t) => ({ ...t, meta: saved.meta })));
        } else {
          const promise = new Promise((resolve, reject) => pending.set(key, { resolve, reject }));
          cache.set(key, promise);
          model.send({ type: "tmk-fetch", key });
          if (!timer && !note) timer = setTimeout(waitNote, WAIT_NOTE_MS);
        }
      }
      return cache.get(key);
    },
    dispose() {
      model.off("msg:custom", onMessage);
      clearTimeout(timer);
      note?.remove();
      pending.clear();
    },
  };
}
