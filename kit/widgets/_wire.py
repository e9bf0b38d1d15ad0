"""Tensors on the wire: raw bytes with dtype, shape and scale, never nested JSON lists.

An envelope is a dict ``{dtype, shape, scale, layout, codec, data}``:

- ``dtype``: ``"uint8"`` (non-negative data such as attention, value = byte * scale),
  ``"float16"`` (any sign; value = half * scale, where scale is 1 unless the data's magnitude is
  below 1/16 or above 16384: then a power of two keeps full relative precision) or ``"int32"`` (exact integers such as token ids and ranks,
  scale 1).
- ``shape``: the logical shape, e.g. ``[head, query, key]``.
- ``layout``: ``"dense"`` or ``"tril"``: only the entries ``key <= query`` of the last two axes,
  row by row (``query * (query + 1) / 2 + key`` inside each matrix). Causal attention is zero
  above the diagonal, so this halves the bytes.
- ``codec``: ``"raw"`` or ``"deflate"`` (a zlib stream; browsers inflate it natively).
- ``data``: the bytes, little-endian.

`decode_tensor` is the Python twin of ``widgets/src/shared/tensor.js``.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

__all__ = ["Encoded", "encode_tensor", "decode_tensor", "pack_tril", "unpack_tril", "is_causal"]

Dtype = Literal["uint8", "float16", "int32"]
Layout = Literal["dense", "tril"]

COMPRESS_MIN_BYTES = 4096  # below this, deflate is not worth a decode step


@dataclass(frozen=True)
class Encoded:
    """One encoded tensor: `meta` is JSON-safe, `data` is the payload."""

    meta: dict[str, Any]
    data: bytes

    def envelope(self) -> dict[str, Any]:
        """The dict a synced trait carries (ipywidgets sends `data` as a binary buffer)."""
        return {**self.meta, "data": self.data}

    @property
    def nbytes(self) -> int:
        return len(self.data)


def pack_tril(x: torch.Tensor) -> torch.Tensor:
    """[..., n, n] -> [..., n * (n + 1) / 2]: the lower triangle (key <= query), row by row."""
    n = x.shape[-1]
    if x.shape[-2] != n:
        raise ValueError(f"pack_tril needs square matrices in the last two axes, got shape {tuple(x.shape)}")
    rows, cols = torch.tril_indices(n, n)
    return x[..., rows, cols]


def unpack_tril(packed: torch.Tensor, n: int) -> torch.Tensor:
    """[..., n * (n + 1) / 2] -> [..., n, n] with zeros above the diagonal."""
    if packed.shape[-1] != n * (n + 1) // 2:
        raise ValueError(f"expected {n * (n + 1) // 2} packed entries for n={n}, got {packed.shape[-1]}")
    out = packed.new_zeros((*packed.shape[:-1], n, n))
    rows, cols = torch.tril_indices(n, n)
    out[..., rows, cols] = packed
    return out


def is_causal(x: torch.Tensor, tol: float = 1e-6) -> bool:
    """True when every matrix in the last two axes is zero above the diagonal."""
    if x.ndim < 2 or x.shape[-2] != x.shape[-1]:
        return False
    return x.numel() == 0 or float(torch.triu(x, diagonal=1).abs().amax()) <= tol


def encode_tensor(
    x: torch.Tensor,
    dtype: Dtype = "uint8",
    layout: Layout = "dense",
    compress: bool | None = None,
) -> Encoded:
    """Encode `x` for the browser.

    uint8 quantises linearly: ``byte = round(x / scale)`` with ``scale = max(x) / 255``, so the
    round-trip error is at most ``scale / 2``; it needs ``x >= 0``. float16 keeps the sign.
    int32 is for integers (token ids, ranks): exact, and it refuses values that are not integers.
    ``compress=None`` deflates payloads of 4 KiB or more when that makes them smaller.
    """
    if dtype == "int32":
        return _encode_int32(x, layout, compress)
    x = x.detach().to("cpu", torch.float32)
    shape = list(x.shape)
    if layout == "tril":
        x = pack_tril(x)
    elif layout != "dense":
        raise ValueError(f"layout must be 'dense' or 'tril', got {layout!r}")
    if dtype == "uint8":
        low, top = (float(v) for v in torch.aminmax(x)) if x.numel() else (0.0, 0.0)
        if not (math.isfinite(low) and math.isfinite(top)):
            raise ValueError("uint8 encoding needs finite values")
        if low < 0:
            raise ValueError("uint8 encoding is for non-negative data such as attention; use float16")
        scale = top / 255 if top > 0 else 1 / 255
        raw = x.mul(1 / scale).round_().clamp_(0, 255).to(torch.uint8).numpy().tobytes()
    elif dtype == "float16":
        scale = _float16_scale(x)
        raw = (x / scale if scale != 1.0 else x).numpy().astype("<f2").tobytes()
    else:
        raise ValueError(f"dtype must be 'uint8', 'float16' or 'int32', got {dtype!r}")
    return _finish(raw, dtype, shape, scale, layout, compress)


def _float16_scale(x: torch.Tensor) -> float:
    """1, or a power of two that brings very small or very large data into float16's precise range."""
    finite = x[torch.isfinite(x)]
    top = float(finite.abs().max()) if finite.numel() else 0.0
    if top == 0.0 or 2.0**-4 <= top <= 2.0**14:
        return 1.0
    return 2.0 ** math.floor(math.log2(top))


def _finish(raw: bytes, dtype: str, shape: list[int], scale: float, layout: str, compress: bool | None) -> Encoded:
    codec, data = "raw", raw
    if compress or (compress is None and len(raw) >= COMPRESS_MIN_BYTES):
        packed = zlib.compress(raw, 1)
        if compress or len(packed) < len(raw):
            codec, data = "deflate", packed
    meta = {"dtype": dtype, "shape": shape, "scale": scale, "layout": layout, "codec": codec}
    return Encoded(meta, data)


def _encode_int32(x: torch.Tensor, layout: str, compress: bool | None) -> Encoded:
    x = x.detach().to("cpu")
    shape = list(x.shape)
    if x.is_floating_point():
        if not bool(torch.isfinite(x).all()) or not bool((x == x.round()).all()):
            raise ValueError("int32 encoding needs integer values")
    if x.numel() and (int(x.min()) < -(2**31) or int(x.max()) >= 2**31):
        raise ValueError("int32 encoding: values out of the int32 range")
    x = x.to(torch.int64)
    if layout == "tril":
        x = pack_tril(x)
    elif layout != "dense":
        raise ValueError(f"layout must be 'dense' or 'tril', got {layout!r}")
    raw = x.numpy().astype("<i4").tobytes()
    return _finish(raw, "int32", shape, 1.0, layout, compress)


def decode_tensor(meta: dict[str, Any], data: bytes | memoryview) -> torch.Tensor:
    """Envelope -> float32 tensor (int64 for int32) of the logical shape (zeros above the diagonal for tril)."""
    raw = zlib.decompress(bytes(data)) if meta["codec"] == "deflate" else bytes(data)
    if meta["dtype"] == "int32":
        values = torch.from_numpy(np.frombuffer(raw, dtype="<i4").astype(np.int64))
    else:
        np_dtype = {"uint8": np.uint8, "float16": np.dtype("<f2")}[meta["dtype"]]
        values = torch.from_numpy(np.frombuffer(raw, dtype=np_dtype).astype(np.float32) * np.float32(meta["scale"]))
    shape = list(meta["shape"])
    if meta["layout"] == "tril":
        n = shape[-1]
        return unpack_tril(values.reshape(*shape[:-2], n * (n + 1) // 2), n)
    return values.reshape(shape)
