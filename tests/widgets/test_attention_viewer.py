"""AttentionViewer, Python side: inputs, traits, lazy data, export."""

import base64
import json
import re

import ipywidgets
import pytest
import torch
import traitlets
from widget_fakes import HOSTILE_TOKENS, FakeModel, FakeTrace

from kit.widgets import AttentionViewer, html_page
from kit.widgets._wire import decode_tensor

WORDS = ["The", " cat", " sat", " on", " the", " mat"]


@pytest.fixture
def trace():
    return FakeTrace([WORDS, WORDS[:4]], n_layers=3, n_heads=4)


def test_reads_tokens_shape_and_patterns_from_a_trace(trace):
    v = AttentionViewer(trace)
    assert v.tokens == WORDS
    assert (v.n_layers, v.n_heads) == (3, 4)
    assert v._shape == {"n_layers": 3, "n_heads": 4, "n_tokens": 6}
    assert torch.equal(v.pattern(2, 1), trace["pattern", 2][0, 1])


def test_batch_index_drops_the_padding(trace):
    v = AttentionViewer(trace, batch_index=1)
    assert v.tokens == WORDS[:4]
    assert v.pattern(0, 3).shape == (4, 4)
    assert torch.equal(v.pattern(0, 3), trace["pattern", 0][1, 3, :4, :4])


def test_left_padding_is_read_through_the_mask():
    tr = FakeTrace([WORDS, WORDS[:4]], n_layers=1, n_heads=2)
    tr.mask[1] = torch.tensor([False, False, True, True, True, True])
    v = AttentionViewer(tr, batch_index=1)
    assert torch.equal(v.pattern(0, 1), tr["pattern", 0][1, 1][2:, 2:])


def test_batch_index_out_of_range_names_the_valid_range(trace):
    with pytest.raises(ValueError, match=r"0\.\.1"):
        AttentionViewer(trace, batch_index=2)


def test_model_and_prompt_traces_the_patterns():
    model = FakeModel(n_layers=2, n_heads=5)
    v = AttentionViewer(model, "a b c")
    assert model.calls == [("a b c", ["pattern"])]
    assert v.tokens == ["a", " b", " c"] and v.n_heads == 5


def test_a_model_without_a_prompt_is_refused():
    with pytest.raises(TypeError, match="prompt"):
        AttentionViewer(FakeModel())


def test_something_else_is_refused():
    with pytest.raises(TypeError, match="trace"):
        AttentionViewer([1, 2, 3])


def test_unknown_keyword_is_refused_with_a_spelling_hint(trace):
    with pytest.raises(TypeError, match=r"'hed'.*Did you mean 'head'\?"):
        AttentionViewer(trace, hed=1)
    with pytest.raises(TypeError, match=r"Valid keyword arguments: .*batch_index"):
        AttentionViewer(trace, zzz=1)


def test_scores_must_be_layer_by_head(trace):
    AttentionViewer(trace, scores={"induction": torch.rand(3, 4)})
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        AttentionViewer(trace, scores={"induction": torch.rand(4, 3)})
    with pytest.raises(TypeError, match="dict"):
        AttentionViewer(trace, scores=torch.rand(3, 4))


def test_scores_travel_as_float16_bytes(trace):
    s = torch.rand(3, 4)
    v = AttentionViewer(trace, scores={"induction": s, "prev_token": 1 - s})
    env = v._scores["induction"]
    assert isinstance(env["data"], bytes) and env["dtype"] == "float16"
    assert torch.allclose(decode_tensor(env, env["data"]), s, atol=1e-3)


def test_selection_traits_are_validated(trace):
    v = AttentionViewer(trace, layer=2, head=3, token=5)
    assert (v.layer, v.head, v.token) == (2, 3, 5)
    with pytest.raises(traitlets.TraitError, match=r"layer must be in 0\.\.2"):
        v.layer = 3
    with pytest.raises(traitlets.TraitError, match="head"):
        v.head = -1
    with pytest.raises(traitlets.TraitError, match="-1 for none"):
        v.token = 6
    v.token = -1
    with pytest.raises(traitlets.TraitError):
        AttentionViewer(trace, layer=7)
    with pytest.raises(traitlets.TraitError):
        v.theme = "sepia"


def test_the_selection_traits_are_synced_and_shared_by_name(trace):
    v = AttentionViewer(trace)
    synced = set(v.trait_names(sync=True))
    assert {"layer", "head", "token", "theme"} <= synced
    other = AttentionViewer(trace)
    link = ipywidgets.jslink((v, "layer"), (other, "layer"))  # validates both ends
    assert link.source == (v, "layer")
    py_link = traitlets.link((v, "head"), (other, "head"))
    v.head = 2
    assert other.head == 2
    py_link.unlink()


def _front_end_update(widget, **state):
    widget._handle_msg({"content": {"data": {"method": "update", "state": state, "buffer_paths": []}}, "buffers": []})


def test_a_click_in_the_view_reaches_python_observers(trace):
    v = AttentionViewer(trace)
    seen = []
    v.observe(lambda change: seen.append((change["name"], change["new"])), names=["layer", "head", "token"])
    _front_end_update(v, layer=1, head=2)
    _front_end_update(v, token=4)
    assert (v.layer, v.head, v.token) == (1, 2, 4)
    assert ("layer", 1) in seen and ("head", 2) in seen and ("token", 4) in seen


@pytest.fixture
def sent(trace):
    """A viewer whose outgoing comm messages are recorded."""
    v = AttentionViewer(trace)
    log = []
    v.comm.send = lambda data=None, buffers=None, **kw: log.append((data, buffers or []))
    return v, log


def test_python_changes_are_sent_to_the_view(sent):
    v, log = sent
    v.head = 3
    updates = [data["state"] for data, _ in log if data["method"] == "update"]
    assert {"head": 3} in updates


def test_the_view_fetches_one_head_lazily(sent, trace):
    v, log = sent
    v._handle_msg(
        {"content": {"data": {"method": "custom", "content": {"type": "tmk-fetch", "key": "head/2/1"}}}, "buffers": []}
    )
    ((data, buffers),) = [entry for entry in log if entry[0]["method"] == "custom"]
    reply = data["content"]
    assert reply["type"] == "tmk-blob" and reply["key"] == "head/2/1"
    assert reply["meta"]["layout"] == "tril" and reply["meta"]["dtype"] == "uint8"
    back = decode_tensor(reply["meta"], bytes(buffers[0]))
    expected = trace["pattern", 2][0, 1]
    assert back.shape == expected.shape
    assert (back - expected).abs().max() <= reply["meta"]["scale"] / 2 + 1e-6


def test_an_unknown_fetch_gets_an_error_reply(sent):
    v, log = sent
    for key in ["head/9/0", "head/0/9", "head/x/0", "layer/0", "nope"]:
        v._handle_msg(
            {"content": {"data": {"method": "custom", "content": {"type": "tmk-fetch", "key": key}}}, "buffers": []}
        )
    errors = [data["content"]["error"] for data, _ in log if data["method"] == "custom"]
    assert len(errors) == 5 and all("no data named" in e for e in errors)


def test_the_initial_state_has_no_float_lists(trace):
    """Tensors travel as bytes: no synced value is a nested list of numbers."""
    v = AttentionViewer(trace, scores={"induction": torch.rand(3, 4)})

    def lists_of_numbers(x):
        if isinstance(x, dict):
            return any(lists_of_numbers(y) for y in x.values())
        if isinstance(x, (list, tuple)):
            return any(isinstance(y, (float, list)) for y in x) or any(lists_of_numbers(y) for y in x)
        return False

    state = v._state_for_html()
    assert isinstance(state["_thumbs"]["data"], bytes)
    assert not lists_of_numbers({k: val for k, val in state.items() if k != "_shape"})


def test_layer_payload_is_at_most_one_byte_per_causal_entry():
    n, heads, layers = 40, 4, 2
    tr = FakeTrace([[f" t{i}" for i in range(n)]], n_layers=layers, n_heads=heads)
    v = AttentionViewer(tr)
    total = sum(v.blob(k).nbytes for k in v._blob_keys())
    assert total <= layers * heads * n * (n + 1) // 2


def test_non_causal_patterns_fall_back_to_dense():
    tr = FakeTrace([WORDS], n_layers=1, n_heads=2)
    tr._patterns[0] = torch.full_like(tr._patterns[0], 1 / 6)
    v = AttentionViewer(tr)
    meta = v.blob("head/0/1").meta
    assert meta["layout"] == "dense"
    assert torch.allclose(decode_tensor(meta, v.blob("head/0/1").data), tr._patterns[0][0, 1], atol=meta["scale"])


def test_to_html_is_one_self_contained_file(trace, tmp_path):
    v = AttentionViewer(FakeTrace([HOSTILE_TOKENS], n_layers=2, n_heads=2))
    out = tmp_path / "viewer.html"
    page = v.to_html(out)
    assert out.read_text(encoding="utf-8") == page
    assert "<script src" not in page and "http://" not in page and "https://" not in page
    # hostile token text never appears raw: it is JSON with '<' escaped inside the data script
    assert "<script>alert(1)</script>" not in page and "<img src=x" not in page
    assert page.count("</script>") == page.count("<script")
    payload = json.loads(re.search(r'<script type="application/vnd.tmk.widget\+json">(.*?)</script>', page).group(1))
    assert payload["state"]["_tokens"] == HOSTILE_TOKENS
    assert payload["blobs"] == {}  # a short prompt: the thumbnails hold every pattern
    thumbs = base64.b64decode(payload["buffers"][payload["buffer_paths"].index(["_thumbs", "data"])])
    meta = {k: payload["state"]["_thumbs"][k] for k in ["dtype", "shape", "scale", "layout", "codec"]}
    assert torch.allclose(decode_tensor(meta, thumbs)[1, 0], v.pattern(1, 0), atol=meta["scale"] / 2 + 1e-6)


def test_long_prompts_get_pooled_thumbnails_and_lazy_heads():
    n = 80
    tr = FakeTrace([[f" t{i}" for i in range(n)]], n_layers=2, n_heads=3)
    v = AttentionViewer(tr)
    assert v._thumbs["shape"] == [2, 3, 64, 64]
    thumbs = decode_tensor(v._thumbs, v._thumbs["data"])
    full = torch.stack([tr["pattern", layer][0] for layer in range(2)])
    step = v._thumbs["scale"]
    assert torch.allclose(thumbs.amax((-1, -2)), full.amax((-1, -2)), atol=step / 2 + 1e-6)  # max-pooled: peaks survive
    assert float((thumbs - full[..., :64, :64]).abs().max()) > step  # pooled, not cropped
    heads = [f"head/{layer}/{head}" for layer in range(2) for head in range(3)]
    assert v._blob_keys() == heads
    payload = json.loads(
        re.search(r'<script type="application/vnd.tmk.widget\+json">(.*?)</script>', v.to_html()).group(1)
    )
    assert sorted(payload["blobs"]) == heads
    payload = json.loads(re.search(r'<script type="application/vnd.tmk.widget\+json">(.*?)</script>',
                                   v.to_html(heads=[(1, 2), (-2, 0)])).group(1))
    assert sorted(payload["blobs"]) == ["head/0/0", "head/1/2"]  # only the heads asked for
    assert v._blob_keys() == heads  # and only for that page


def test_to_html_over_the_data_budget_is_refused_with_the_way_out(tmp_path):
    n = 300
    v = AttentionViewer(FakeTrace([[f" t{i}" for i in range(n)]], n_layers=2, n_heads=3))
    out = tmp_path / "viewer.html"
    with pytest.raises(ValueError, match=r"more than 39 KiB.*heads=\[\(layer, head\).*max_bytes=.*KIT_MAX_HTML_BYTES"):
        v.to_html(out, max_bytes=40_000)
    assert not out.exists()
    v.to_html(out, heads=[(0, 0)], max_bytes=40_000)  # the way out it names
    with pytest.raises(ValueError, match=r"heads takes \(layer, head\) pairs"):
        v.to_html(heads=[0])
    with pytest.raises(ValueError, match=r"valid heads are 0\.\.2"):
        v.to_html(heads=[(0, 3)])


def test_html_page_holds_several_widgets_and_one_copy_of_the_code(trace):
    page = html_page([AttentionViewer(trace), AttentionViewer(trace, batch_index=1)])
    assert page.count('type="application/vnd.tmk.widget+json"') == 2
    assert page.count('type="application/vnd.tmk.module+json"') == 1


def test_repr_reads_well(trace):
    text = repr(
        AttentionViewer(FakeTrace([["a", " b\n"]], n_layers=1, n_heads=2), scores={"induction": torch.zeros(1, 2)})
    )
    assert text.startswith("AttentionViewer(1 layer x 2 heads, 2 tokens: a ·b↵")
    assert "scores: induction" in text and "layer=0" in text
