// Decoding of the tensor envelopes written by kit/widgets/_wire.py.
//
// An envelope is {dtype, shape, scale, layout, codec, data}: `data` holds the raw bytes
// (a DataView, ArrayBuffer or typed array), `dtype` is "uint8", "float16" or "int32", the value is
// stored * scale, `layout` is "dense" or "tril" (only entries key <= query of the last two
// axes, row by row), `codec` is "raw" or "deflate" (zlib stream).

/** View any binary buffer as a Uint8Array without copying. */
export function toBytes(buf) {
  if (buf instanceof Uint8Array) return buf;
  if (buf instanceof ArrayBuffer) return new Uint8Array(buf);
  if (ArrayBuffer.isView(buf)) return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  throw new TypeError("expected binary data (DataView, ArrayBuffer or typed array)");
}

/** Inflate a zlib ("deflate") stream with the browser's own DecompressionStream. */
export async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** IEEE 754 half precision bits -> number. */
export function halfToFloat(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Number of stored entries for `shape` under `layout`. */
export function storedLength(shape, layout) {
  if (layout !== "tril") return shape.reduce((a, b) => a * b, 1);
  const n = shape[shape.length - 1];
  const lead = shape.slice(0, -2).reduce((a, b) => a * b, 1);
  return (lead * n * (n + 1)) / 2;
}

/**
 * Decode an envelope into {shape, scale, layout, dtype, values}. `values` stays quantised
 * (Uint8Array for uint8, so colour lookups stay cheap; Float32Array for float16, already multiplied
 * by the scale; Int32Array for int32).
 */
export async function decodeTensor(env) {
  let bytes = toBytes(env.data);
  if (env.codec === "deflate") bytes = await inflate(bytes);
  const count = storedLength(env.shape, env.layout);
  let values;
  if (env.dtype === "uint8") {
    values = bytes;
  } else if (env.dtype === "float16") {
    const aligned = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
    const bits = new Uint16Array(aligned.buffer, aligned.byteOffset, count);
    values = Float32Array.from(bits, halfToFloat);
    if (env.scale !== 1) for (let i = 0; i < values.length; i++) values[i] *= env.scale;
  } else if (env.dtype === "int32") {
    const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
    values = new Int32Array(aligned.buffer, aligned.byteOffset, Math.floor(aligned.byteLength / 4));
  } else {
    throw new Error(`unsupported dtype ${env.dtype}`);
  }
  if (values.length !== count) throw new Error(`expected ${count} values, got ${values.length}`);
  return { shape: env.shape, scale: env.scale, layout: env.layout, dtype: env.dtype, values };
}

/**
 * Accessor for one [n, n] matrix inside a decoded [..., n, n] tensor.
 * `get(q, k)` returns the quantised value (0 above the diagonal of a tril tensor).
 */
export function matrix(tensor, index) {
  const n = tensor.shape[tensor.shape.length - 1];
  const tril = tensor.layout === "tril";
  const base = tril ? (index * n * (n + 1)) / 2 : index * n * n;
  const v = tensor.values;
  const get = tril
    ? (q, k) => (k > q ? 0 : v[base + (q * (q + 1)) / 2 + k])
    : (q, k) => v[base + q * n + k];
  return { n, tril, scale: tensor.scale, get };
}

/**
 * Max-pool a matrix to `size` x `size` cells (or keep it when n <= size).
 * Returns {size, cells: Uint8Array|Float32Array, masked: Uint8Array} where masked marks
 * cells lying wholly above the diagonal of a causal (tril) matrix.
 */
export function poolMax(m, size) {
  const n = m.n;
  const d = Math.min(n, size);
  const cells = new Float32Array(d * d);
  const masked = new Uint8Array(d * d).fill(m.tril ? 1 : 0);
  for (let q = 0; q < n; q++) {
    const row = Math.floor((q * d) / n) * d;
    const last = m.tril ? q : n - 1;
    for (let k = 0; k <= last; k++) {
      const c = row + Math.floor((k * d) / n);
      const x = m.get(q, k);
      masked[c] = 0;
      if (x > cells[c]) cells[c] = x;
    }
  }
  return { size: d, cells, masked };
}
