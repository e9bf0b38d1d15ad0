"""GPU figures: trace and causal-tracing throughput on a GPT-2-small-shape model at 1024 tokens, SNMF at scale.

    python benchmarks/gpu.py              # on a CUDA machine; prints the GPU's name with every figure
    python benchmarks/gpu.py --quick      # smaller sizes, one repetition (also runs on the CPU)

- trace: a 12-layer GPT-2-small-shape model (d_model 768, 12 heads, d_mlp 3072, vocab 50257, random
  weights), batch 4 x 1024 tokens: plain HF forward vs ``model.trace`` (everything captured);
  tokens per second and the ratio; also everything but the attention patterns (capturing a
  pattern means materialising [batch, head, query, key] per layer instead of a fused attention kernel).
- causal tracing: one 16-token prompt, every (layer, position) cell with 10 noise samples, batched
  ``causal_trace`` vs one forward per cell (on a sample of the cells, scaled up); cells per second.
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
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU machine, or pass --quick --device cpu to check the script")
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    reps = 1 if args.quick else 5
    layers, n_tok, batch = (2, 128, 1) if args.quick else (12, 1024, 4)
    model = gpt2_small_shape(layers, args.device)
    print(f"device: {name}; torch {torch.__version__}; {layers}-layer GPT-2-small shape; reps={reps}")

    ids = torch.randint(1, 50257, (batch, n_tok), generator=torch.Generator().manual_seed(0)).to(model.device)

    def plain():
        with torch.no_grad():
            model.hf(input_ids=ids, use_cache=False)

    no_pattern = [n for n in NAMES if n != "pattern"]
    t_plain, t_trace = timed(plain, reps), timed(lambda: model.trace(ids), reps)
    t_no_pattern = timed(lambda: model.trace(ids, capture=no_pattern), reps)
    tokens = batch * n_tok
    print(f"trace {batch} x {n_tok} tokens: plain HF {t_plain * 1e3:.1f} ms ({tokens / t_plain:,.0f} tok/s), "
          f"trace everything {t_trace * 1e3:.1f} ms ({tokens / t_trace:,.0f} tok/s), ratio {t_trace / t_plain:.2f}; "
          f"everything but attention patterns {t_no_pattern * 1e3:.1f} ms, "
          f"ratio {t_no_pattern / t_plain:.2f}")

    prompt = " ".join(f"w{i}" for i in range(1, 17))  # 16 tokens, subject at positions 2..4
    batched = lambda: causal_trace(model, prompt, "w3 w4 w5", answer=7, kind="resid", samples=10)  # noqa: E731
    t_batched = timed(batched, reps)
    t_naive = timed(lambda: naive_grid(model, prompt, "w3 w4 w5", answer=7), max(1, reps // 2))
    cells = layers * 16
    print(f"causal tracing {layers} x 16 cells x 10 samples: batched {t_batched:.2f} s ({cells / t_batched:,.0f} cells/s), "
          f"one forward per cell {t_naive:.2f} s, ratio {t_naive / t_batched:.1f}")

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
