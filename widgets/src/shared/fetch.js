// Lazy data: the view asks Python for a named blob (e.g. "layer/3"); Python answers with a
// tensor envelope and one binary buffer. The static HTML host answers the same request from
// data inlined in the page.
import { decodeTensor } from "./tensor.js";

/**
 * Returns {get(key): Promise<decoded tensor>, dispose()}; results are cached per view. Each result
 * also carries `meta`, the blob's whole description (which may hold more than the envelope).
 */
export function createFetcher(model) {
  const cache = new Map();
  const pending = new Map();
  const onMessage = (content, buffers) => {
    if (!content || content.type !== "tmk-blob" || !pending.has(content.key)) return;
    const { resolve, reject } = pending.get(content.key);
    pending.delete(content.key);
    if (content.error) reject(new Error(content.error));
    else decodeTensor({ ...content.meta, data: buffers[0] }).then((t) => resolve({ ...t, meta: content.meta }), reject);
  };
  model.on("msg:custom", onMessage);
  return {
    get(key) {
      if (!cache.has(key)) {
        const promise = new Promise((resolve, reject) => pending.set(key, { resolve, reject }));
        cache.set(key, promise);
        model.send({ type: "tmk-fetch", key });
      }
      return cache.get(key);
    },
    dispose() {
      model.off("msg:custom", onMessage);
      pending.clear();
    },
  };
}
