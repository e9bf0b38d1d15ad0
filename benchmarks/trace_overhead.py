"""Cost of ``model.trace`` against a plain Hugging Face forward on the same prompts.

Cases: a plain forward, a trace of logits only, of everything, of everything but the attention
patterns, and of everything with the patterns of one head per layer (``heads=[0]``).
A 4-layer model with GPT-2 small's shape (d_model 768, 12 heads, d_mlp 3072, vocab 50257), random
weights, at 128 and 512 tokens. Runs are interleaved and the median of repeated runs is compared
within this one process, so the ratios are robust to the machine's speed.

    python benchmarks/trace_overhead.py            # full run, prints a table of medians and ratios
    python benchmarks/trace_overhead.py --quick    # one repetition each, to keep it working in CI
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
from tokenizers import Tokenizer, models

import kit


def build_model(device: str) -> kit.Model:
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=4, n_head=12, n_embd=768, n_positions=1024, vocab_size=50257)
    hf = GPT2LMHeadModel(cfg)
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>")),
                                  unk_token="<unk>", pad_token="<unk>")
    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(d)
        tok.save_pretrained(d)
        return kit.load(d, device=device)


def median_seconds(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one repetition per case (CI smoke run)")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    reps = 1 if args.quick else args.reps
    model = build_model(args.device)
    print(f"model: 4-layer GPT-2-shape, {sum(p.numel() for p in model.hf.parameters()) / 1e6:.0f}M params, "
          f"device={model.device}, threads={torch.get_num_threads()}, batch={args.batch}, reps={reps}")
    print(f"{'tokens':>6} {'plain HF (ms)':>14} {'trace logits (ms)':>18} {'ratio':>6} {'trace all (ms)':>15} {'ratio':>6} "
          f"{'all but patterns':>17} {'ratio':>6} {'patterns of 1 head':>19} {'ratio':>6}")
    for n in (128, 512):
        ids = torch.randint(0, 50257, (args.batch, n), generator=torch.Generator().manual_seed(n)).to(model.device)
        mask = torch.ones_like(ids)

        def plain():
            with torch.no_grad():
                model.hf(input_ids=ids, attention_mask=mask, use_cache=False)

        cases = {"plain": plain,
                 "logits": lambda: model.trace(ids, capture=[]),
                 "all": lambda: model.trace(ids),
                 "no_pattern": lambda: model.trace(ids, capture=[n for n in kit.names.NAMES if n != "pattern"]),
                 "one_head": lambda: model.trace(ids, heads=[0])}
        for fn in cases.values():  # warm-up
            fn()
        samples = {k: [] for k in cases}
        for _ in range(reps):  # interleave, so drift affects all cases alike
            for k, fn in cases.items():
                samples[k].append(median_seconds(fn, 1))
        med = {k: statistics.median(v) * 1e3 for k, v in samples.items()}
        print(f"{n:>6} {med['plain']:>14.1f} {med['logits']:>18.1f} {med['logits'] / med['plain']:>6.2f} "
              f"{med['all']:>15.1f} {med['all'] / med['plain']:>6.2f} "
              f"{med['no_pattern']:>17.1f} {med['no_pattern'] / med['plain']:>6.2f} "
              f"{med['one_head']:>19.1f} {med['one_head'] / med['plain']:>6.2f}")
    print("targets: trace logits <= 1.10 x plain; trace all <= 1.5 x plain")


if __name__ == "__main__":
    main()
