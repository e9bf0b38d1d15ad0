"""GPU figures: trace and causal-tracing throughput on a GPT-2-small-shape model at 1024 tokens, SNMF at scale.

    python benchmarks/gpu.py              # on a CUDA machine; prints the GPU's name with every figure
    python benchmarks/gpu.py --quick      # smaller sizes, one repetition (also runs on the CPU)
    python benchmarks/gpu.py --only 7b    # only the Llama-7B-shape rows (sections: trace, causal, 7b, snmf)

- trace: a 12-layer GPT-2-small-shape model (d_model 768, 12 heads, d_mlp 3072, vocab 50257, random
  weights), batch 4 x 1024 tokens: plain HF forward vs ``model.trace`` (everything captured);
  tokens per second and the ratio; also everything but the attention patterns (capturing a
  pattern means materialising [batch, head, query, key] per layer instead of a fused attention kernel).
- causal tracing: one 16-token prompt, every (layer, position) cell with 10 noise samples, batched
  ``causal_trace`` vs one forward per cell (on a sample of the cells, scaled up); cells per second.
- 7B shape: a Llama-7B-shape model (32 layers, d_model 4096, 32 heads, d_mlp 11008, vocab 32000,
  random weights, bfloat16), one prompt of 512 and of 2048 tokens: plain SDPA forward, a trace of
  logits only, of everything but the patterns, and of everything; milliseconds, ratio to plain,
  and peak GPU memory of each row. (``--quick``: a 2-layer small Llama shape on any device.)
- SNMF: k = 50 on activations of 3072 x 100000 (random sparse nonnegative plus noise), seconds to
  the end and the relative reconstruction error.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

import kit
from kit.analysis import causal_trace, snmf
from kit.names import NAMES

from causal_tracing import naive_grid  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, reps: int) -> float:
    """Median seconds of `reps` calls after one warm-up."""
    fn()
    out = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def gpt2_small_shape(n_layer: int, device: str) -> kit.Model:
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=n_layer, n_head=12, n_embd=768, n_positions=1024, vocab_size=50257))
    words = {f"w{i}": i for i in range(50257)}
    words["<unk>"] = 0
    backend = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<unk>")
    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(d)
        tok.save_pretrained(d)
        return kit.load(d, device=device)


def word_tokenizer(vocab: int) -> PreTrainedTokenizerFast:
    words = {f"w{i}": i for i in range(vocab)}
    words["<unk>"] = 0
    backend = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<unk>")


def llama_7b_shape(quick: bool, device: str) -> kit.Model:
    """Random weights in the shape of Llama-2-7B (bfloat16 on a GPU), built in place on ``device``."""
    if quick:
        cfg = LlamaConfig(num_hidden_layers=2, hidden_size=128, num_attention_heads=4, intermediate_size=344,
                          vocab_size=32000, max_position_embeddings=4096)
    else:
        cfg = LlamaConfig(num_hidden_layers=32, hidden_size=4096, num_attention_heads=32, num_key_value_heads=32,
                          intermediate_size=11008, vocab_size=32000, max_position_embeddings=4096)
    cfg._attn_implementation = "sdpa"
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        hf = LlamaForCausalLM(cfg).to(dtype)
    return kit.Model(hf, word_tokenizer(cfg.vocab_size), name="llama-7b-shape")


def peak_mib(fn) -> float | None:
    """Peak GPU memory (MiB) allocated while ``fn`` runs, or None on the CPU."""
    if not torch.cuda.is_available():
        fn()
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def seven_b_rows(quick: bool, device: str, reps: int) -> None:
    model = llama_7b_shape(quick, device)
    print(f"7B shape: {model!r}, dtype {next(model.hf.parameters()).dtype}")
    no_pattern = [n for n in NAMES if n != "pattern"]
    for n_tok in ((64, 256) if quick else (512, 2048)):
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(1, model.vocab_size, (1, n_tok), generator=gen).to(model.device)

        def plain():
            with torch.no_grad():
                model.hf(input_ids=ids, use_cache=False)

        rows = {
            "plain SDPA": plain,
            "logits only": lambda: model.trace(ids, capture=[], max_bytes=2**40),
            "everything but patterns": lambda: model.trace(ids, capture=no_pattern, max_bytes=2**40),
            "everything": lambda: model.trace(ids, max_bytes=2**40),
        }
        base = None
        for label, fn in rows.items():
            t = timed(fn, reps)
            peak = peak_mib(fn)
            base = base or t
            mem = f", peak {peak:,.0f} MiB" if peak is not None else ""
            print(f"7B shape {n_tok} tokens, {label}: {t * 1e3:.1f} ms, ratio {t / base:.2f}{mem}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--only", nargs="*", choices=["trace", "causal", "7b", "snmf"], default=None,
                    help="run only these sections (default: all)")
    args = ap.parse_args()
    run = set(args.only or ["trace", "causal", "7b", "snmf"])
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU machine, or pass --quick --device cpu to check the script")
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    reps = 1 if args.quick else 5
    print(f"device: {name}; torch {torch.__version__}; reps={reps}")
    if "7b" in run:
        seven_b_rows(args.quick, args.device, reps)
    if not run & {"trace", "causal", "snmf"}:
        return
    layers, n_tok, batch = (2, 128, 1) if args.quick else (12, 1024, 4)
    model = gpt2_small_shape(layers, args.device)
    print(f"{layers}-layer GPT-2-small shape")

    ids = torch.randint(1, 50257, (batch, n_tok), generator=torch.Generator().manual_seed(0)).to(model.device)

    def plain():
        with torch.no_grad():
            model.hf(input_ids=ids, use_cache=False)

    if "trace" in run:
        no_pattern = [n for n in NAMES if n != "pattern"]
        t_plain, t_trace = timed(plain, reps), timed(lambda: model.trace(ids), reps)
        t_no_pattern = timed(lambda: model.trace(ids, capture=no_pattern), reps)
        tokens = batch * n_tok
        print(f"trace {batch} x {n_tok} tokens: plain HF {t_plain * 1e3:.1f} ms ({tokens / t_plain:,.0f} tok/s), "
              f"trace everything {t_trace * 1e3:.1f} ms ({tokens / t_trace:,.0f} tok/s), ratio {t_trace / t_plain:.2f}; "
              f"everything but attention patterns {t_no_pattern * 1e3:.1f} ms, "
              f"ratio {t_no_pattern / t_plain:.2f}")

    if "causal" in run:
        prompt = " ".join(f"w{i}" for i in range(1, 17))  # 16 tokens, subject at positions 2..4
        batched = lambda: causal_trace(model, prompt, "w3 w4 w5", answer=7, kind="resid", samples=10)  # noqa: E731
        t_batched = timed(batched, reps)
        t_naive = timed(lambda: naive_grid(model, prompt, "w3 w4 w5", answer=7), max(1, reps // 2))
        cells = layers * 16
        print(f"causal tracing {layers} x 16 cells x 10 samples: batched {t_batched:.2f} s ({cells / t_batched:,.0f} cells/s), "
              f"one forward per cell {t_naive:.2f} s, ratio {t_naive / t_batched:.1f}")

    if "snmf" in run:
        d_mlp, n = (512, 4000) if args.quick else (3072, 100_000)
        g = torch.Generator().manual_seed(0)
        z = torch.randn(d_mlp, 50, generator=g) * (torch.rand(d_mlp, 50, generator=g) < 0.02)
        y = torch.rand(50, n, generator=g) * (torch.rand(50, n, generator=g) < 0.05)
        acts = (z @ y + 0.01 * torch.randn(d_mlp, n, generator=g)).to(args.device)
        sync()
        t0 = time.perf_counter()
        dec = snmf(acts, 50, n_iter=40 if args.quick else 200, progress=False)
        sync()
        print(f"SNMF k=50 on {d_mlp} x {n:,}: {time.perf_counter() - t0:.1f} s, relative error {dec.loss:.4f}")


if __name__ == "__main__":
    main()
