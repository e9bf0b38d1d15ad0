"""SNMF on ``facts-4l``, measured: label purity of features vs neurons, NMF and DiffMeans; steering at matched KL.

    python scripts/snmf_report.py            # the tables of docs/snmf.md (every layer; a few minutes)
    python scripts/snmf_report.py --quick    # layers 0 and 2, 40 sentences per relation (what the test runs)

A report, not part of the library: it ties ``kit.analysis`` (the measurements) to ``kit.train`` (the
invented world), which the library packages never do to each other.

Everything is computed from the model and its world (``kit.train.load_world``); nothing is tied to
one set of weights. The corpus is the world's training sentences (prompt, answer, full stop). Each
token gets two labels:

- ``relation``: the relation of its sentence (capital, language, ...), for every token but ``<|bos|>``;
- ``entity type``: for tokens of the subject, the subject's type (country, person); for tokens of the
  answer, the answer's type (city, language, continent, currency, profession); ``-1`` for the rest.

A unit's purity is the share of its 20 top-activating tokens carrying its most common label
(:func:`kit.analysis.features.label_purity`), against each labelling and the better of the two.
Units: SNMF features (``Y``'s rows), NMF components of the clipped activations (the Ecco approach),
single neurons, and DiffMeans directions (one per label; tokens scored by the projection of their
activations, a supervised baseline).

Steering: for each relation, the concept is its answers' tokens and the place is the last token of
the prompts of the *other* relations (where the model predicts an answer of another type). The SNMF
feature is the one firing most selectively on the last prompt token of the relation's own sentences;
DiffMeans is the mean activation there minus elsewhere; the random direction has the feature's
sparsity. Each is scaled to the same KL divergence (binary search), and scored by the rise of the
concept's log-probability (:func:`kit.analysis.steering.compare_steering`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

import kit
from kit.analysis.features import (
    MLPActivations,
    diff_means,
    label_purity,
    mlp_activations,
    random_sparse_like,
)
from kit.analysis.snmf import Decomposition, nmf, snmf
from kit.analysis.steering import SteeringResult, compare_steering
from kit.models import Model
from kit.train import load_world

__all__ = ["Corpus", "corpus", "PurityTable", "purity_table", "concept_feature", "steering_by_relation",
           "steering_markdown", "mean_gains", "SCHEMES"]

SCHEMES = ("relation", "entity type")


@dataclass(frozen=True, repr=False)
class Corpus:
    """Sentences of the world and per-token labels: ``labels[scheme][n_tokens]`` (``-1``: none),
    ``names[scheme][label]``; ``last_prompt[n_tokens]`` True on each sentence's last prompt token
    (the one that predicts the answer); ``relation_of[p]`` the relation index of sentence ``p``."""

    sentences: list[str]
    prompts: list  # kit.train.world.Prompt
    labels: dict[str, torch.Tensor]
    names: dict[str, list[str]]
    last_prompt: torch.Tensor
    relation_of: torch.Tensor

    def __repr__(self) -> str:
        return f"Corpus(sentences={len(self.sentences)}, tokens={len(self.last_prompt)}, relations={self.names['relation']})"


def corpus(model: Model, world, split: str = "train", per_relation: int | None = None, seed: int = 0) -> Corpus:
    """The world's ``split`` sentences (``per_relation``: a seeded sample of that many per relation) with
    token labels. Token positions follow ``model.tokenizer`` (``<|bos|>`` included, as traced)."""
    rel_names = list(world.relations)
    ent_names: list[str] = []
    for r in world.relations.values():
        for t in (r.subject_type, r.answer_type):
            if t not in ent_names:
                ent_names.append(t)
    g = torch.Generator().manual_seed(seed)
    prompts = []
    for name in rel_names:
        ps = world.prompts(split, name)
        if per_relation is not None and per_relation < len(ps):
            ps = [ps[i] for i in torch.randperm(len(ps), generator=g)[:per_relation].sort().values.tolist()]
        prompts += ps
    rel, ent, last, which = [], [], [], []
    for p in prompts:
        sentence = p.sentence
        enc = model.tokenizer(sentence, return_offsets_mapping=True)
        r = rel_names.index(p.relation)
        rtype = world.relations[p.relation]
        (s0, s1), a0, a1 = p.subject_span, len(p.text), len(p.text) + len(p.answer)
        prompt_end = len(model.tokenizer(p.text)["input_ids"]) - 1  # last prompt token
        for i, (a, b) in enumerate(enc["offset_mapping"]):
            real = b > a
            rel.append(r if real else -1)
            if real and a < s1 and b > s0:
                ent.append(ent_names.index(rtype.subject_type))
            elif real and a < a1 and b > a0:
                ent.append(ent_names.index(rtype.answer_type))
            else:
                ent.append(-1)
            last.append(i == prompt_end)
            which.append(r)
    return Corpus([p.sentence for p in prompts], prompts,
                  {"relation": torch.tensor(rel), "entity type": torch.tensor(ent)},
                  {"relation": rel_names, "entity type": ent_names}, torch.tensor(last), torch.tensor(rel))


def _unit_rows(directions: torch.Tensor) -> torch.Tensor:
    return directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-12)


@dataclass(frozen=True, repr=False)
class PurityTable:
    """Per-unit purity ``purity[units][scheme]`` (schemes: ``SCHEMES`` and ``"best"``, the per-unit max),
    ``chance[scheme]`` for random token sets, on MLP ``layer``; ``snmf`` / ``nmf`` the fits."""

    layer: int
    purity: dict[str, dict[str, torch.Tensor]]
    chance: dict[str, float]
    top: int
    snmf: Decomposition
    nmf: Decomposition | None
    n_tokens: int

    def mean(self, units: str, scheme: str = "best") -> float:
        return float(self.purity[units][scheme].float().mean())

    def markdown(self) -> str:
        cols = list(SCHEMES) + ["best"]
        lines = [f"| layer {self.layer}: units | count | " + " | ".join(f"purity: {c}" for c in cols)
                 + " | share with best >= 0.9 |", "| --- | ---: |" + " ---: |" * (len(cols) + 1)]
        for name, p in self.purity.items():
            lines.append(f"| {name} | {len(p['best'])} | " + " | ".join(f"{p[c].float().mean():.3f}" for c in cols)
                         + f" | {(p['best'] >= 0.9).float().mean():.0%} |")
        lines.append("| random tokens (chance) | - | " + " | ".join(f"{self.chance[c]:.3f}" for c in cols) + " | - |")
        return "\n".join(lines)


def _purities(scores: torch.Tensor, labels: dict[str, torch.Tensor], top: int) -> dict[str, torch.Tensor]:
    out = {s: label_purity(scores, labels[s], top).purity for s in SCHEMES}
    out["best"] = torch.stack([out[s] for s in SCHEMES]).amax(0)
    return out


def purity_table(acts: MLPActivations, corp: Corpus, k: int = 50, top: int = 20, seed: int = 0,
                 with_nmf: bool = True, **snmf_kwargs) -> PurityTable:
    """Fit SNMF (and NMF) with ``k`` units to ``acts`` and measure the purity of every kind of unit."""
    A, labels = acts.acts, corp.labels
    if A.shape[1] != len(labels["relation"]):
        raise ValueError(f"{A.shape[1]} activation columns for {len(labels['relation'])} labelled tokens")
    fit = snmf(A, k, seed=seed, **{"progress": False, **snmf_kwargs})
    purity = {"SNMF features": _purities(fit.Y, labels, top)}
    base = None
    if with_nmf:
        base = nmf(A, k, seed=seed)
        purity["NMF components (Ecco)"] = _purities(base.Y, labels, top)
    purity["single neurons"] = _purities(A, labels, top)
    dm = torch.cat([_unit_rows(diff_means(A, labels[s])) for s in SCHEMES])  # [labels of both schemes, d_mlp]
    purity["DiffMeans directions (supervised)"] = _purities(dm @ A, labels, top)
    g = torch.Generator().manual_seed(seed)
    chance = {s: float(v.float().mean()) for s, v in _purities(torch.rand(500, A.shape[1], generator=g), labels,
                                                                top).items()}
    return PurityTable(acts.layer, purity, chance, top, fit, base, A.shape[1])


def concept_feature(fit: Decomposition, mask: torch.Tensor) -> int:
    """The SNMF feature that fires most selectively on the tokens of ``mask[n_tokens]``: the largest
    difference of its mean ``Y`` inside and outside the mask, in units of its standard deviation."""
    Y = fit.Y.float()
    sel = (Y[:, mask].mean(1) - Y[:, ~mask].mean(1)) / Y.std(1).clamp_min(1e-12)
    return int(sel.argmax())


def steering_by_relation(model: Model, acts: MLPActivations, corp: Corpus, fit: Decomposition, world,
                         target_kl: float = 0.5, prompts_per_relation: int = 10, relations: Sequence[str] | None = None,
                         seed: int = 0) -> dict[str, dict[str, SteeringResult]]:
    """For each relation: steer the last token of other relations' held-out prompts with the relation's
    SNMF feature, DiffMeans and a random direction of the feature's sparsity, at ``target_kl``; the
    concept is the relation's answers. Returns ``{relation: {direction name: SteeringResult}}``."""
    out = {}
    names = corp.names["relation"]
    for r in relations or names:
        ri = names.index(r)
        mask = corp.last_prompt & (corp.relation_of == ri)
        j = concept_feature(fit, mask)
        z = fit.Z[:, j]
        others = [p.text for name in names if name != r for p in world.prompts("held_out", name)]
        g = torch.Generator().manual_seed(seed)
        prompts = [others[i] for i in torch.randperm(len(others), generator=g)[:prompts_per_relation].tolist()]
        directions = {f"SNMF feature {j}": z, "DiffMeans": diff_means(acts.acts, mask),
                      "random, same sparsity": random_sparse_like(z, seed=seed)}
        out[r] = compare_steering(model, prompts, acts.layer, directions, target_kl, concept=world.answers(r), pos=-1)
    return out


def steering_markdown(results: dict[str, dict[str, SteeringResult]]) -> str:
    """One row per relation: the concept log-prob gain of each direction at the matched KL."""
    lines = ["| concept (answers of) | SNMF feature | gain: SNMF feature | gain: DiffMeans | gain: random | KL |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r, res in results.items():
        feat, dm, rnd = res.values()
        kls = "/".join(f"{x.kl:.2f}" + ("" if x.matched else "*") for x in res.values())
        lines.append(f"| {r} | {feat.name.split()[-1]} | {feat.gain:+.2f} | {dm.gain:+.2f} | {rnd.gain:+.2f} | {kls} |")
    g = mean_gains(results)
    lines.append(f"| **mean** | | {g['feature']:+.2f} | {g['DiffMeans']:+.2f} | {g['random']:+.2f} | |")
    return "\n".join(lines)


def mean_gains(results: dict[str, dict[str, SteeringResult]]) -> dict[str, float]:
    """Mean concept log-prob gain over relations of the ``feature``, ``DiffMeans`` and ``random`` directions."""
    gains = torch.tensor([[x.gain for x in res.values()] for res in results.values()])  # [relation, direction]
    return dict(zip(("feature", "DiffMeans", "random"), gains.mean(0).tolist()))


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="SNMF on facts-4l: purity and steering tables")
    ap.add_argument("--model", default="facts-4l")
    ap.add_argument("--quick", action="store_true", help="layers 0 and 2, 40 sentences per relation (the test's setting)")
    ap.add_argument("--layers", type=int, nargs="*", help="MLP layers (default: all; --quick: 0 2)")
    ap.add_argument("-k", type=int, default=50)
    ap.add_argument("--target-kl", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model, world = kit.load(args.model, device="cpu"), load_world()
    corp = corpus(model, world, per_relation=40 if args.quick else None)
    layers = args.layers if args.layers else ([0, 2] if args.quick else list(range(model.n_layers)))
    print(f"{args.model}: {len(corp.sentences)} training sentences, {len(corp.last_prompt)} tokens, k={args.k}, "
          f"top {20} tokens per unit\n")
    for layer in layers:
        acts = mlp_activations(model, corp.sentences, layer)
        table = purity_table(acts, corp, k=args.k)
        print(table.markdown(), "\n")
        res = steering_by_relation(model, acts, corp, table.snmf, world, target_kl=args.target_kl)
        print(f"Steering MLP layer {layer} at the last token, matched KL {args.target_kl} "
              f"(KL of feature/DiffMeans/random; * = not matched):\n")
        print(steering_markdown(res), "\n")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
