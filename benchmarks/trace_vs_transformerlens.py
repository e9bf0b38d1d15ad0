"""``model.trace`` (everything captured) against TransformerLens ``run_with_cache`` on the same weights.

A 4-layer model of GPT-2 small's shape (random weights, saved to a temporary directory) is loaded by
both: the kit through ``kit.load(dir)``, TransformerLens through ``TransformerBridge.boot_transformers``
on the same directory (offline). Both run the same token ids; medians of interleaved repeated runs,
with a plain Hugging Face forward as the common baseline. TransformerLens is not a kit dependency:
install it into a separate environment together with the kit (``make bench-env``) and run

    .bench-venv/bin/python benchmarks/trace_vs_transformerlens.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from tokenizers import Tokenizer, models  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast  # noqa: E402

import kit  # noqa: E402


def timed(fn, reps: int) -> float:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=9)
    args = ap.parse_args()
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except ImportError:
        raise SystemExit("TransformerLens is not installed in this environment: run `make bench-env` and use "
                         ".bench-venv/bin/python") from None
    reps = 1 if args.quick else args.reps
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=4, n_head=12, n_embd=768, n_positions=1024, vocab_size=50257))
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>")),
                                  unk_token="<unk>", pad_token="<unk>")
    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(d)
        tok.save_pretrained(d)
        ours = kit.load(d, device="cpu")
        bridge = TransformerBridge.boot_transformers(d, device="cpu", tokenizer=tok)
    bridge.eval()
    print(f"4-layer GPT-2-shape model, batch 2, threads={torch.get_num_threads()}, reps={reps}")
    print(f"{'tokens':>6} {'plain HF':>9} {'kit trace':>10} {'TL run_with_cache':>18} {'kit/HF':>7} {'TL/HF':>6} {'TL/kit':>7}")
    for n in (128, 512):
        ids = torch.randint(0, 50257, (2, n), generator=torch.Generator().manual_seed(n))

        def plain():
            with torch.no_grad():
                ours.hf(input_ids=ids, use_cache=False)

        def tl():
            with torch.no_grad():
                bridge.run_with_cache(ids)

        cases = {"plain": plain, "kit": lambda: ours.trace(ids), "tl": tl}
        for fn in cases.values():
            fn()
        samples = {k: [] for k in cases}
        for _ in range(reps):
            for k, fn in cases.items():
                samples[k].append(timed(fn, 1))
        m = {k: statistics.median(v) * 1e3 for k, v in samples.items()}
        print(f"{n:>6} {m['plain']:>7.0f}ms {m['kit']:>8.0f}ms {m['tl']:>16.0f}ms {m['kit'] / m['plain']:>7.2f} "
              f"{m['tl'] / m['plain']:>6.2f} {m['tl'] / m['kit']:>7.2f}")


if __name__ == "__main__":
    main()
