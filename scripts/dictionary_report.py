"""Sparse dictionaries on ``facts-4l``, measured: SAE and transcoder against SNMF, NMF and single neurons.

    python scripts/dictionary_report.py            # the tables of docs/dictionaries.md (3 seeds, layer 0)
    python scripts/dictionary_report.py --quick    # 3 seeds, 30 sentences per relation, no wide dictionaries

A report, not part of the library: it ties ``kit.analysis`` (the measurements) to ``kit.train`` (the
invented world) and ``kit.lessons.mlp`` (lesson 04's labels and matched-KL protocol, reused unchanged).

Setting (lesson 04's, docs/snmf.md "Seeds and spread"): ``per_relation`` training sentences of each relation
of the world, MLP ``layer`` of ``facts-4l``; every token labelled by the world (a relation's template word, a
country's or a person's name, an answer of some type, a sentence boundary: ``kit.lessons.mlp.token_labels``).
Units, each fitted once per seed on the same tokens:

- SNMF features and NMF components (the Ecco approach: the activations clipped at zero; scikit-learn with a
  seeded ``nndsvdar`` start) of the neurons ``mlp_post``, ``k`` units;
- an SAE of ``mlp_post`` and a transcoder from the MLP's input (``mlp_normalized``) to its output
  (``mlp_out``), ``k`` latents, and (``--wide``, the default of the full run) both with ``d_mlp`` latents;
- every single neuron (no fit; its seed only redraws the steered prompts).

Measured per kind of unit and seed: reconstruction (relative error ``‖A − Â‖/‖A‖`` of what the method
reconstructs: ``mlp_post`` for SNMF, NMF and the SAE, ``mlp_out`` for the transcoder); the next-token KL from
the clean model and the loss with that reconstruction spliced in at every token (mean-ablating the MLP's
output is the floor); L0 (units above 1 % of their own maximum, per token); dead units (never above 1e-6 of
the method's largest activation); label purity of the live units' 20 top tokens; and the steering gain at a
matched KL (``kit.lessons.mlp.matched_kl_comparison``: per relation, the unit most selective for its last
prompt tokens, against DiffMeans and a random direction of SNMF's sparsity; a transcoder feature is steered
through the neurons with exactly its effect on ``mlp_out``, :meth:`kit.analysis.Dictionary.mlp_directions`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

import kit
from kit.analysis import Decomposition, Dictionary, label_purity, mlp_io, nmf, snmf, train_sae, train_transcoder
from kit.analysis.splice import MLPInOut, _kl_sum, _next_token_terms
from kit.interventions import Edit
from kit.lessons import mlp as lesson
from kit.models import Model
from kit.train import load_world

__all__ = ["Setting", "setting", "Fit", "fit_methods", "unit_stats", "splice_columns", "Report", "measure",
           "spread_verdict", "main"]

BATCH = 64  # prompts per trace: mlp_io and splice_columns must walk the tokens in the same order


@dataclass(frozen=True, repr=False)
class Setting:
    """The model, its world, the labelled sentences (``prompts``: ``world.prompts`` items) and one MLP layer's
    input, neurons and output over their tokens (``io``), with ``labels[n_tokens]`` from the world."""

    model: Model
    world: object
    prompts: list
    io: MLPInOut
    labels: torch.Tensor

    @property
    def sentences(self) -> list[str]:
        return [p.sentence for p in self.prompts]

    @property
    def layer(self) -> int:
        return self.io.layer

    def __repr__(self) -> str:
        return f"Setting(layer={self.layer}, sentences={len(self.prompts)}, tokens={self.io.n_tokens})"


def setting(model: Model, world, per_relation: int = 60, layer: int = 0, seed: int = 0) -> Setting:
    """Lesson 04's corpus: ``per_relation`` sentences of each relation and every token's world label."""
    prompts = lesson.world_sentences(world, per_relation=per_relation, seed=seed)
    io = mlp_io(model, [p.sentence for p in prompts], layer, batch_size=BATCH)
    per_prompt = lesson.token_labels(model, world, prompts)
    labels = torch.tensor([per_prompt[b][q] for b, q in zip(io.col.prompt.tolist(), io.col.pos.tolist())])
    return Setting(model, world, prompts, io, labels)


@dataclass(frozen=True, repr=False)
class Fit:
    """One method's units for one seed: ``units`` (a Decomposition whose ``Z[d_mlp, k]`` are MLP-neuron
    directions for steering and ``Y[k, n_tokens]`` the units' activations), ``target[d, n]`` what the method
    reconstructs, ``recon[d, n]`` its reconstruction, spliced at ``site`` (``mlp_post`` or ``mlp_out``)."""

    name: str
    seed: int
    units: Decomposition
    target: torch.Tensor
    recon: torch.Tensor
    site: str
    seconds: float
    fitted: object = None


def _dictionary_fit(name: str, seed: int, d: Dictionary, st: Setting, t0: float) -> Fit:
    W_out = st.model.adapter.W_out(st.layer).detach().float().cpu()
    if d.kind == "sae":
        return Fit(name, seed, d, st.io.hidden, d.reconstruct(), "mlp_post", time.perf_counter() - t0, d)
    units = Decomposition(d.mlp_directions(W_out), d.Y, list(d.losses), "transcoder")
    return Fit(name, seed, units, st.io.outputs, d.reconstruct(), "mlp_out", time.perf_counter() - t0, d)


def fit_methods(st: Setting, k: int = 40, seeds: Sequence[int] = (0, 1, 2), wide: bool = False, l1: float = 0.1,
                steps: int = 300, wide_steps: int = 1000, progress: bool = True) -> dict[str, list[Fit]]:
    """Every method fitted once per seed on ``st``'s tokens: ``{method: [Fit per seed]}``. SNMF first (the
    random steering direction takes its sparsity)."""
    A = st.io.hidden
    out: dict[str, list[Fit]] = {m: [] for m in ("SNMF", "NMF (Ecco)", f"SAE k={k}", f"transcoder k={k}")}
    d_mlp = A.shape[0]
    if wide:
        out[f"SAE k={d_mlp}"], out[f"transcoder k={d_mlp}"] = [], []
    out["single neurons"] = []
    for s in seeds:
        t0 = time.perf_counter()
        f = snmf(A, k, seed=s, progress=False)
        out["SNMF"].append(Fit("SNMF", s, f, A, f.reconstruct(), "mlp_post", time.perf_counter() - t0, f))
        t0 = time.perf_counter()
        f = nmf(A, k, seed=s, init="nndsvdar")
        out["NMF (Ecco)"].append(Fit("NMF (Ecco)", s, f, A, f.reconstruct(), "mlp_post", time.perf_counter() - t0, f))
        t0 = time.perf_counter()
        out[f"SAE k={k}"].append(_dictionary_fit("SAE", s, train_sae(A, k, l1=l1, steps=steps, seed=s,
                                                                     progress=progress), st, t0))
        t0 = time.perf_counter()
        out[f"transcoder k={k}"].append(_dictionary_fit(
            "transcoder", s, train_transcoder(st.io.inputs, st.io.outputs, k, l1=l1, steps=steps, seed=s,
                                              progress=progress), st, t0))
        if wide:
            t0 = time.perf_counter()
            out[f"SAE k={d_mlp}"].append(_dictionary_fit(
                "SAE", s, train_sae(A, d_mlp, l1=l1, steps=wide_steps, seed=s, progress=progress), st, t0))
            t0 = time.perf_counter()
            out[f"transcoder k={d_mlp}"].append(_dictionary_fit(
                "transcoder", s, train_transcoder(st.io.inputs, st.io.outputs, d_mlp, l1=l1, steps=wide_steps,
                                                  seed=s, progress=progress), st, t0))
        neurons = Decomposition(torch.eye(d_mlp), A, [0.0], "neurons")
        out["single neurons"].append(Fit("single neurons", s, neurons, A, A, "mlp_post", 0.0))
    return out


def unit_stats(Y: torch.Tensor) -> tuple[float, float, torch.Tensor]:
    """``(L0, dead share, live mask[k])`` of unit activations ``Y[k, n_tokens]``: a unit is active on a token
    above 1 % of its own maximum, dead when its maximum is at most 1e-6 of the largest unit's."""
    peak = Y.max(1).values  # [k]
    live = peak > 1e-6 * peak.max().clamp_min(1e-30)
    active = (Y > 0.01 * peak[:, None]) & live[:, None]
    return float(active.float().sum(0).mean()), float((~live).float().mean()), live


def splice_columns(st: Setting, site: str, values: torch.Tensor) -> tuple[float, float]:
    """``(loss, KL)``: next-token loss (nats) and mean KL(clean ‖ spliced) over the predicted real tokens of
    ``st``'s sentences, with ``site`` (``mlp_post`` or ``mlp_out``) of ``st.layer`` replaced by the columns of
    ``values[d, n_tokens]`` (in :func:`kit.analysis.mlp_io`'s token order)."""
    model, texts = st.model, st.sentences
    if values.shape[1] != st.io.n_tokens:
        raise ValueError(f"values must have one column per token ({st.io.n_tokens}); got {list(values.shape)}")
    loss_sum = kl_sum = 0.0
    m_total = start = 0
    for s in range(0, len(texts), BATCH):
        batch = texts[s:s + BATCH]
        clean = model.trace(batch, capture=[])
        mask = clean.mask
        cols = values[:, start:start + int(mask.sum())].T  # [tokens, d]
        start += int(mask.sum())

        def put(x, m=mask, c=cols):
            x = x.clone()
            x[m] = c.to(x.device, x.dtype)
            return x

        spliced = model.trace(batch, capture=[], interventions=[Edit(site, st.layer, put)])
        base, _ = _next_token_terms(clean.logits, clean.input_ids, mask)
        lp, loss = _next_token_terms(spliced.logits, clean.input_ids, mask)
        loss_sum += float(loss.sum())
        kl_sum += _kl_sum(base, lp)
        m_total += loss.shape[0]
    return loss_sum / m_total, kl_sum / m_total


def spread_verdict(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str], higher_is_better: bool = True) -> str:
    """``"tie"`` when the intervals mean ± sd over seeds of ``a`` and ``b`` overlap, else who is ahead."""
    ma, mb, sa, sb = float(a.mean()), float(b.mean()), float(a.std()) if a.numel() > 1 else 0.0, \
        float(b.std()) if b.numel() > 1 else 0.0
    if abs(ma - mb) <= sa + sb:
        return "tie"
    return f"{names[0] if (ma > mb) == higher_is_better else names[1]} ahead"


@dataclass(frozen=True, repr=False)
class Report:
    """``values[metric][method]``: one value per seed; ``steering``: lesson 04's MatchedComparison (gain per
    concept and seed); ``floor``: the clean loss, mean-ablation loss and KL, chance purity; ``seconds``."""

    values: dict[str, dict[str, torch.Tensor]]
    steering: lesson.MatchedComparison
    floor: dict[str, float]
    units: dict[str, int]
    setting: str
    seconds: dict[str, float] = field(default_factory=dict)

    METRICS = (("rel_error", "relative error", False), ("kl", "spliced KL", False), ("loss", "spliced loss", False),
               ("l0", "L0", False), ("dead", "dead", False), ("purity", "purity (live units)", True))

    def mean_sd(self, metric: str, method: str) -> tuple[float, float]:
        v = self.values[metric][method]
        return float(v.mean()), float(v.std()) if v.numel() > 1 else 0.0

    def markdown(self) -> str:
        lines = ["| units | k | relative error (target) | spliced KL | spliced loss | L0 | dead | purity (live units) "
                 "| steering gain at matched KL |", "| --- | ---: |" + " ---: |" * 7]
        for m in self.values["purity"]:
            cells = []
            for key, _, _ in self.METRICS:
                mean, sd = self.mean_sd(key, m)
                fmt = {"dead": "{:.0%} ± {:.0%}", "l0": "{:.1f} ± {:.1f}", "kl": "{:.4f} ± {:.4f}"}.get(key,
                                                                                                   "{:.3f} ± {:.3f}")
                cell = fmt.format(mean, sd)
                if key == "rel_error":
                    cell += " (mlp_out)" if m.startswith("transcoder") else " (mlp_post)"
                cells.append(cell)
            g = self.steering.gain[m]
            cells.append(f"{float(g.mean()):+.2f} ± {float(g.std()):.2f}")
            lines.append(f"| {m} | {self.units[m]} | " + " | ".join(cells) + " |")
        for m in ("DiffMeans", "random (sparse)"):
            g = self.steering.gain[m]
            lines.append(f"| {m} (steering only) | - | - | - | - | - | - | - | {float(g.mean()):+.2f} ± {float(g.std()):.2f} |")
        f = self.floor
        lines.append(f"| clean model / mean-ablated MLP output / chance | - | - | 0 / {f['ablated_kl']:.3f} | "
                     f"{f['clean_loss']:.3f} / {f['ablated_loss']:.3f} | - | - | {f['chance']:.3f} | - |")
        return "\n".join(lines)

    def verdicts(self, pairs: Sequence[tuple[str, str]]) -> str:
        lines = ["| A vs B | purity | reconstruction (same target only) | spliced KL | steering: A − B (n) | steering |",
                 "| --- | --- | --- | --- | ---: | --- |"]
        for a, b in pairs:
            if b not in self.values["purity"]:  # DiffMeans or the random direction: steering only
                mean, sd, n = self.steering.difference(a, b)
                lines.append(f"| {a} vs {b} | - | - | - | {mean:+.2f} ± {sd:.2f} ({n}) | {self.steering.verdict(a, b)} |")
                continue
            pur = spread_verdict(self.values["purity"][a], self.values["purity"][b], (a, b))
            same = a.startswith("transcoder") == b.startswith("transcoder")
            exact = "single neurons" in (a, b)
            rec = ("- (neurons are exact)" if exact else "- (different targets)" if not same else
                   spread_verdict(self.values["rel_error"][a], self.values["rel_error"][b], (a, b), False))
            kl = "- (neurons are exact)" if exact else spread_verdict(self.values["kl"][a], self.values["kl"][b],
                                                                       (a, b), False)
            mean, sd, n = self.steering.difference(a, b)
            lines.append(f"| {a} vs {b} | {pur} | {rec} | {kl} | {mean:+.2f} ± {sd:.2f} ({n}) | "
                         f"{self.steering.verdict(a, b)} |")
        return "\n".join(lines)


def measure(st: Setting, fits: dict[str, list[Fit]], target_kl: float = 1.0, rtol: float = 0.01,
            n_prompts: int = 10, top: int = 20) -> Report:
    """Every metric of every fit (see the module docstring)."""
    t0 = time.perf_counter()
    values: dict[str, dict[str, torch.Tensor]] = {key: {} for key, _, _ in Report.METRICS}
    for m, runs in fits.items():
        rows = []
        for f in runs:
            rel = float((f.target - f.recon).norm() / f.target.norm())
            if m == "single neurons":
                loss, kl = splice_columns(st, "mlp_post", f.recon) if not rows else (rows[0][1], rows[0][2])
            else:
                loss, kl = splice_columns(st, f.site, f.recon)
            l0, dead, live = unit_stats(f.units.Y)
            pur = float(label_purity(f.units.Y[live], st.labels, top).purity.mean())
            rows.append((rel, loss, kl, l0, dead, pur))
        t = torch.tensor(rows)
        for i, (key, _, _) in enumerate(Report.METRICS):
            values[key][m] = t[:, [0, 2, 1, 3, 4, 5][i]]
    t_splice = time.perf_counter() - t0
    mean_out = st.io.outputs.mean(1, keepdim=True).expand_as(st.io.outputs)
    ablated_loss, ablated_kl = splice_columns(st, "mlp_out", mean_out)
    clean_loss, _ = splice_columns(st, "mlp_out", st.io.outputs)
    g = torch.Generator().manual_seed(0)
    chance = float(label_purity(torch.rand(500, st.io.n_tokens, generator=g), st.labels, top).purity.mean())
    t0 = time.perf_counter()
    steering = lesson.matched_kl_comparison(st.model, st.world, st.io.col, st.prompts,
                                            {m: [f.units for f in runs] for m, runs in fits.items()},
                                            target_kl=target_kl, rtol=rtol, n_prompts=n_prompts)
    t_steer = time.perf_counter() - t0
    units = {m: runs[0].units.k for m, runs in fits.items()}
    fit_s = {m: sum(f.seconds for f in runs) for m, runs in fits.items()}
    return Report(values, steering, {"clean_loss": clean_loss, "ablated_loss": ablated_loss,
                                     "ablated_kl": ablated_kl, "chance": chance},
                  units, repr(st), {"splice and purity": t_splice, "steering": t_steer, **{f"fit {m}": s for m, s in fit_s.items()}})


PAIRS_SMALL = ("SAE k={k}", "SNMF"), ("transcoder k={k}", "SNMF"), ("SAE k={k}", "transcoder k={k}"), \
    ("SAE k={k}", "NMF (Ecco)"), ("NMF (Ecco)", "SNMF"), ("SAE k={k}", "single neurons"), \
    ("transcoder k={k}", "single neurons"), ("SNMF", "single neurons"), ("NMF (Ecco)", "single neurons"), \
    ("SAE k={k}", "random (sparse)"), ("transcoder k={k}", "random (sparse)"), ("SNMF", "random (sparse)"), \
    ("SAE k={k}", "DiffMeans"), ("SNMF", "DiffMeans")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="SAE and transcoder vs SNMF, NMF and neurons on facts-4l")
    ap.add_argument("--model", default="facts-4l")
    ap.add_argument("--quick", action="store_true", help="30 sentences per relation, no wide dictionaries")
    ap.add_argument("--layer", type=int, default=0)
    ap.add_argument("-k", type=int, default=40)
    ap.add_argument("--per-relation", type=int, default=None, help="sentences per relation (default 60; quick 30)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--target-kl", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    model, world = kit.load(args.model, device="cpu"), load_world()
    per_relation = args.per_relation or (30 if args.quick else 60)
    st = setting(model, world, per_relation=per_relation, layer=args.layer)
    print(f"{args.model}, MLP {st.layer}: {len(st.prompts)} sentences, {st.io.n_tokens} tokens, k={args.k}, "
          f"seeds 0..{args.seeds - 1}, steering matched to KL {args.target_kl} within 1 %\n")
    fits = fit_methods(st, k=args.k, seeds=range(args.seeds), wide=not args.quick)
    report = measure(st, fits, target_kl=args.target_kl)
    print(report.markdown(), "\n")
    pairs = [(a.format(k=args.k), b.format(k=args.k)) for a, b in PAIRS_SMALL]
    if not args.quick:
        d = model.d_mlp
        pairs += [(f"SAE k={d}", f"SAE k={args.k}"), (f"transcoder k={d}", f"transcoder k={args.k}"),
                  (f"SAE k={d}", "SNMF"), (f"transcoder k={d}", "SNMF")]
    print(report.verdicts(pairs), "\n")
    unmatched = {m: int(((kl - args.target_kl).abs() > 0.01 * args.target_kl).sum()) for m, kl in report.steering.kl.items()}
    print("steering runs outside 1 % of the target KL:", unmatched)
    print("seconds:", {k: round(v, 1) for k, v in report.seconds.items()})
    print(f"({time.perf_counter() - t_start:.0f} s in all)")


if __name__ == "__main__":
    main()
