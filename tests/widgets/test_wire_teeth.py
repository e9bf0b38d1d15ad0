"""The wire format's edges: integers that are not, compression that does not pay, pooled thumbnails.

Each test decodes what the browser would receive and compares it with what Python meant to send.
"""

from __future__ import annotations

import zlib

import pytest
import torch
import torch.nn.functional as F

from kit.widgets import AttentionViewer
from kit.widgets._wire import COMPRESS_MIN_BYTES, decode_tensor, encode_tensor, is_causal, pack_tril, unpack_tril
from tests.fixtures_teeth import LONG, PROMPT


# --- int32 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [2.5, -0.5, 1e-3, 7.999, float("nan"), float("inf")])
def test_int32_refuses_values_that_are_not_integers(bad):
    with pytest.raises(ValueError, match="int32"):
        encode_tensor(torch.tensor([1.0, bad, 3.0]), "int32")


@pytest.mark.parametrize("bad", [2**31, -(2**31) - 1])
def test_int32_refuses_values_out_of_range(bad):
    with pytest.raises(ValueError, match="range"):
        encode_tensor(torch.tensor([0, bad], dtype=torch.int64), "int32")


@pytest.mark.parametrize("layout", ["dense", "tril"])
def test_int32_round_trips_exactly_at_the_edges_of_its_range(layout):
    x = torch.tensor([[2**31 - 1, 0, 0], [-(2**31), 5, 0], [-1, 1, 123456789]], dtype=torch.int64)
    enc = encode_tensor(x, "int32", layout=layout)
    assert enc.meta["scale"] == 1.0 and len(enc.data) == 4 * (6 if layout == "tril" else 9)
    back = decode_tensor(enc.meta, enc.data)
    assert back.dtype == torch.int64 and torch.equal(back, x)
    floats = encode_tensor(x[2:].double(), "int32")  # integer-valued floats are accepted, exactly
    assert torch.equal(decode_tensor(floats.meta, floats.data), x[2:])


# --- compression ----------------------------------------------------------------------------------

def test_payloads_of_4_kib_or_more_are_deflated_only_when_that_makes_them_smaller():
    n = COMPRESS_MIN_BYTES // 4  # int32: exactly 4 KiB
    noise = torch.randint(-(2**31), 2**31 - 1, (n,), generator=torch.Generator().manual_seed(0))  # random bytes
    enc = encode_tensor(noise, "int32")
    assert len(zlib.compress(enc.data, 1)) > len(enc.data)  # deflate would make it larger
    assert enc.meta["codec"] == "raw" and len(enc.data) == COMPRESS_MIN_BYTES
    assert torch.equal(decode_tensor(enc.meta, enc.data), noise)
    n = COMPRESS_MIN_BYTES // 2  # float16: exactly 4 KiB
    flat = encode_tensor(torch.zeros(n), "float16")  # the same size, compressible
    assert flat.meta["codec"] == "deflate" and len(flat.data) < COMPRESS_MIN_BYTES // 10
    assert torch.equal(decode_tensor(flat.meta, flat.data), torch.zeros(n))
    small = encode_tensor(torch.zeros(n - 1), "float16")  # just below 4 KiB: not worth a decode step
    assert small.meta["codec"] == "raw" and len(small.data) == COMPRESS_MIN_BYTES - 2


def test_compress_true_and_false_are_obeyed_whatever_the_size():
    noise = torch.rand(4000, generator=torch.Generator().manual_seed(1))
    forced = encode_tensor(noise, "uint8", compress=True)
    assert forced.meta["codec"] == "deflate"
    assert torch.allclose(decode_tensor(forced.meta, forced.data), noise, atol=forced.meta["scale"] / 2 + 1e-7)
    assert encode_tensor(torch.zeros(8000), "uint8", compress=False).meta["codec"] == "raw"


# --- float16 and uint8 ------------------------------------------------------------------------------

@pytest.mark.parametrize("magnitude", [1e-7, 1e-3, 1.0, 3e4, 1e8])
def test_float16_keeps_three_significant_digits_at_any_magnitude(magnitude):
    x = torch.tensor([1.0, -0.37, 0.5, 0.123]) * magnitude
    enc = encode_tensor(x, "float16")
    back = decode_tensor(enc.meta, enc.data)
    torch.testing.assert_close(back, x, rtol=1e-3, atol=0)


def test_uint8_maps_the_largest_value_to_255_and_zero_to_zero():
    x = torch.tensor([0.0, 0.2, 0.8])
    enc = encode_tensor(x, "uint8", compress=False)
    assert list(enc.data) == [0, round(0.2 / (0.8 / 255)), 255]


# --- thumbnails -------------------------------------------------------------------------------------

@pytest.mark.parametrize("prompt", [PROMPT, LONG])
def test_decoded_thumbnails_equal_the_thumbnails_computed_in_python(teeth, prompt):
    m = teeth["gpt2"]
    tr = m.trace(prompt, capture=["pattern"])
    n = tr.n_pos
    patterns = torch.stack([tr["pattern", l][0] for l in range(m.n_layers)])  # [layer, head, query, key]
    s = min(n, 64)
    want = patterns if n <= 64 else torch.stack([F.adaptive_max_pool2d(p, s) for p in patterns])
    v = AttentionViewer(m, prompt)
    meta = v._thumbs
    assert meta["shape"] == [m.n_layers, m.n_heads, s, s]
    got = decode_tensor(meta, meta["data"])
    torch.testing.assert_close(got, want, atol=meta["scale"] / 2 + 1e-6, rtol=0)
    if n > 64:  # pooled thumbnails are not lower triangles: cells above the diagonal hold weight
        assert n == len(m.to_tokens(LONG)) and n > 64
        assert torch.triu(want, diagonal=1).max() > 10 * meta["scale"]
        assert meta["layout"] == "dense"
    else:
        assert meta["layout"] == "tril"


# --- the edges mutation testing found unguarded -----------------------------------------------------

def test_pack_and_unpack_refuse_wrong_shapes_with_the_numbers():
    with pytest.raises(ValueError, match=r"square matrices.*\(3, 4\)"):
        pack_tril(torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"expected 28 packed entries for n=7, got 27"):
        unpack_tril(torch.zeros(27), 7)
    with pytest.raises(ValueError, match="layout must be 'dense' or 'tril'"):
        encode_tensor(torch.zeros(2, 2, dtype=torch.int64), "int32", layout="upper")


def test_is_causal_on_the_edge_cases():
    assert is_causal(torch.tril(torch.ones(4, 4)))  # a single matrix
    assert not is_causal(torch.ones(4))  # a vector has no diagonal
    assert not is_causal(torch.zeros(3, 4))  # zero above the diagonal, but not square
    assert is_causal(torch.zeros(2, 0, 0))  # nothing to look at
    edge = torch.tril(torch.ones(3, 3))
    edge[0, 2] = 0.5
    assert is_causal(edge, tol=0.5) and not is_causal(edge, tol=0.25)  # tol is inclusive


@pytest.mark.parametrize("top, scale", [(1.0, 1.0), (2.0**-4, 1.0), (0.06, 2.0**-5), (0.03, 2.0**-6),
                                        (2.0**14, 1.0), (16385.0, 2.0**14), (1e6, 2.0**19)])
def test_float16_scale_is_one_inside_its_precise_range_and_a_power_of_two_outside(top, scale):
    x = torch.tensor([top, -top / 3, 0.0])
    enc = encode_tensor(x, "float16")
    assert enc.meta["scale"] == scale
    torch.testing.assert_close(decode_tensor(enc.meta, enc.data), x, rtol=1e-3, atol=0)


def test_float16_of_only_nan_and_infinity_travels_with_scale_one():
    x = torch.tensor([float("nan"), float("inf"), -float("inf")])
    enc = encode_tensor(x, "float16")
    back = decode_tensor(enc.meta, enc.data)
    assert enc.meta["scale"] == 1.0 and torch.isnan(back[0]) and back[1:].tolist() == [float("inf"), -float("inf")]


def test_int32_messages_and_compression_flag():
    with pytest.raises(ValueError, match=r"^int32 encoding needs integer values$"):
        encode_tensor(torch.tensor([0.5]), "int32")
    with pytest.raises(ValueError, match=r"^int32 encoding: values out of the int32 range$"):
        encode_tensor(torch.tensor([2**40]), "int32")
    small = encode_tensor(torch.arange(6), "int32", compress=True)
    assert small.meta["codec"] == "deflate" and torch.equal(decode_tensor(small.meta, small.data), torch.arange(6))
    big = encode_tensor(torch.zeros(4096, dtype=torch.int64), "int32", compress=False)
    assert big.meta["codec"] == "raw" and len(big.data) == 4 * 4096


@pytest.mark.parametrize("dtype", ["uint8", "float16"])
@pytest.mark.parametrize("source", [torch.bfloat16, torch.float64, torch.float16])
def test_any_float_dtype_encodes_as_its_float32_values(dtype, source):
    x = torch.tensor([[0.0, 0.25], [0.5, 1.0]], dtype=source)
    enc = encode_tensor(x, dtype)
    torch.testing.assert_close(decode_tensor(enc.meta, enc.data), x.float(), atol=1 / 255, rtol=0)


@pytest.mark.parametrize("dtype", ["uint8", "float16", "int32"])
def test_an_empty_tensor_round_trips_with_its_shape(dtype):
    enc = encode_tensor(torch.zeros(0, 3), dtype)
    back = decode_tensor(enc.meta, enc.data)
    assert back.shape == (0, 3) and enc.nbytes == 0


def test_uint8_messages_say_what_to_use_instead():
    with pytest.raises(ValueError, match=r"^uint8 encoding needs finite values$"):
        encode_tensor(torch.tensor([float("inf")]), "uint8")
    with pytest.raises(ValueError, match=r"^uint8 encoding is for non-negative data such as attention; use float16$"):
        encode_tensor(torch.tensor([-1.0]), "uint8")
