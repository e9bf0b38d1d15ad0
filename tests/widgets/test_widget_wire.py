"""Serialisers: tensors as bytes with dtype, shape and scale (kit/widgets/_wire.py)."""

import zlib

import pytest
import torch

from kit.widgets._wire import decode_tensor, encode_tensor, is_causal, pack_tril, unpack_tril


def causal_softmax(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = shape[-1]
    logits = torch.randn(*shape, generator=g) * 3
    return logits.masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), float("-inf")).softmax(-1)


def test_pack_tril_keeps_the_lower_triangle_row_by_row():
    x = torch.tensor([[1.0, 9.0, 9.0], [2.0, 3.0, 9.0], [4.0, 5.0, 6.0]])
    assert pack_tril(x).tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_unpack_tril_inverts_pack_and_zeroes_the_upper_triangle():
    x = causal_softmax(2, 3, 7, 7)
    packed = pack_tril(x)
    assert packed.shape == (2, 3, 28)
    assert torch.equal(unpack_tril(packed, 7), x)
    full = torch.rand(7, 7)
    assert torch.equal(unpack_tril(pack_tril(full), 7), full.tril())


def test_unpack_tril_rejects_a_wrong_length():
    with pytest.raises(ValueError, match="28"):
        unpack_tril(torch.zeros(27), 7)


@pytest.mark.parametrize("layout", ["dense", "tril"])
@pytest.mark.parametrize("compress", [False, True])
def test_uint8_round_trip_is_within_half_a_quantisation_step(layout, compress):
    x = causal_softmax(4, 33, 33, seed=1)
    enc = encode_tensor(x, "uint8", layout=layout, compress=compress)
    assert enc.meta["dtype"] == "uint8" and enc.meta["shape"] == [4, 33, 33]
    assert enc.meta["codec"] == ("deflate" if compress else "raw")
    back = decode_tensor(enc.meta, enc.data)
    assert back.shape == x.shape
    scale = enc.meta["scale"]
    assert scale == pytest.approx(float(x.max()) / 255)
    assert (back - x).abs().max() <= scale / 2 + 1e-6


def test_tril_layout_stores_one_byte_per_causal_entry():
    n, heads = 50, 12
    enc = encode_tensor(causal_softmax(heads, n, n), "uint8", layout="tril", compress=False)
    assert len(enc.data) == heads * n * (n + 1) // 2
    dense = encode_tensor(causal_softmax(heads, n, n), "uint8", layout="dense", compress=False)
    assert len(dense.data) == heads * n * n


def test_deflate_is_a_zlib_stream_and_only_kept_when_smaller():
    x = torch.zeros(64, 64)
    x[:, 0] = 1.0  # very compressible
    enc = encode_tensor(x)
    assert enc.meta["codec"] == "deflate" and len(enc.data) < 64 * 64
    assert zlib.decompress(enc.data) == encode_tensor(x, compress=False).data
    tiny = encode_tensor(torch.rand(3, 3))
    assert tiny.meta["codec"] == "raw"


def test_float16_keeps_sign_and_nan():
    x = torch.tensor([[-1.5, 0.25, float("nan")], [3.0, -0.001, 1000.0]])
    enc = encode_tensor(x, "float16")
    assert enc.meta["scale"] == 1.0 and len(enc.data) == 6 * 2
    back = decode_tensor(enc.meta, enc.data)
    assert torch.isnan(back[0, 2])
    finite = ~torch.isnan(x)
    assert torch.allclose(back[finite], x[finite], rtol=1e-3)


@pytest.mark.parametrize(
    "bad", [torch.tensor([-0.1, 0.5]), torch.tensor([float("inf"), 0.5]), torch.tensor([float("nan")])]
)
def test_uint8_refuses_negative_or_non_finite(bad):
    with pytest.raises(ValueError, match="uint8"):
        encode_tensor(bad, "uint8")


def test_unknown_dtype_or_layout_is_refused():
    with pytest.raises(ValueError, match="dtype"):
        encode_tensor(torch.rand(2), "float64")
    with pytest.raises(ValueError, match="layout"):
        encode_tensor(torch.rand(2, 2), layout="upper")


def test_all_zero_tensor_round_trips():
    enc = encode_tensor(torch.zeros(4, 4), layout="tril")
    assert torch.equal(decode_tensor(enc.meta, enc.data), torch.zeros(4, 4))


def test_is_causal():
    assert is_causal(causal_softmax(2, 5, 5))
    assert not is_causal(torch.full((5, 5), 0.2))
    assert not is_causal(torch.rand(3, 4))


def test_envelope_carries_bytes_not_lists():
    env = encode_tensor(causal_softmax(2, 6, 6), layout="tril").envelope()
    assert isinstance(env["data"], bytes)
    assert set(env) == {"dtype", "shape", "scale", "layout", "codec", "data"}
