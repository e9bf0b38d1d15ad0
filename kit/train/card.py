"""Model cards, rendered from the figures measured on the shipped weights (``figures.json``).

``render_card(figures)`` is a pure function of the figures, so a test can
re-measure the weights, compare with ``figures.json``, and check that
``MODEL_CARD.md`` is exactly the card of those figures: the card never claims
a number that was not measured.
"""

from __future__ import annotations

import json

from kit.head_scores import default_len
from kit.train.card_common import figures_table, fmt, training_section
from kit.train.ioi_card import ioi_card

__all__ = ["RATIO_TARGET", "ratio_holds_from", "render_card"]


def _phase_lines(pc: dict, train: dict, T: int) -> list[str]:
    head = (f"In the training log, the best induction score of layer 1 (probed every {train['probe_every']} steps "
            f"on 8 random sequences of {T} tokens repeated twice)")
    if pc["induction_crosses_half"] is None or pc["repeated_loss_drop"] is None:
        return [f"{head} never reached 0.5 in this run: no phase change."]
    gap = abs(pc["induction_crosses_half"] - pc["repeated_loss_drop"])
    return [
        (f"{head} first reaches 0.5 at step {pc['induction_crosses_half']}, and the training loss on repeated "
        f"tokens falls fastest at step {pc['repeated_loss_drop']} (largest drop between the means of the 25 steps "
        f"before and after): {gap} steps apart, {fmt(100 * gap / train['steps'], 1)} % of training.")
    ]


def _control_rows(fig: dict) -> list[tuple[str, str, str]]:
    if "control" not in fig:
        return []
    return [(
        "1-layer control: loss on repeated tokens", f"{fmt(fig['control']['loss_repeated'])} nats",
        ("`python -m kit.train induction-1l` (same recipe, 1 layer): mean training loss on repeated tokens over the "
        f"last 50 steps (this model: {fmt(fig['training']['loss_repeated_last50'])})"),
    )]


def _span(lo_hi) -> str:
    lo, hi = lo_hi
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def _first_gap(r: dict) -> str:
    fg, early = r.get("first_gap"), r.get("early_prob", 0.0)
    parts = [f"{_span(fg)} before the first segment"] if fg else []
    if early:
        parts.append(f"{_span(r.get('early_gap', (0, 0)))} in a share {fmt(early, 2)} of the sequences, whose first "
                     "segment starts at once")
    return f" ({'; '.join(parts)}: so repeats also start near position 0)" if parts else ""


def _length_dist(r: dict) -> str:
    if r.get("segment_dist", "uniform") == "log":
        return "log-uniform length: each doubling of length as likely, so short repeats are common"
    return "uniform length"


def _induction_card(fig: dict) -> list[str]:
    r, m, t = fig["recipe"], fig["measured"], fig["training"]
    s = fig["measure_settings"]
    pc = t["phase_change"]
    T = s["half_len"] or default_len(r["n_ctx"], True, copies=2)  # None: the default of kit.analysis
    T_prev = default_len(r["n_ctx"], True, copies=1)
    return [
        f"# {fig['model']}",
        "",
        (f"A {r['n_layers']}-layer GPT-2 (`GPT2LMHeadModel`) trained from scratch on synthetic text in which "
        "segments repeat, so that it forms a previous-token head in layer 0 and an induction head in layer 1. "
        "It loads with `AutoModelForCausalLM.from_pretrained` and `kit.load(\"induction-2l\")`."),
        "",
        "## Data",
        "",
        (f"- Tokens: `<|bos|>` (0), `<|eos|>` (1), `<|pad|>` (2) and {r['n_tokens']} syllables (`ba`, `be`, `bi`, ...) "
        f"(ids 3-{r['n_tokens'] + 2}); a word-level tokenizer splits text on spaces and puts `<|bos|>` first."),
        (f"- Background: a fixed random language (seed {r['language_seed']}) in which the next token is drawn from "
        f"{fmt(1 - r['skip'], 1)} x a bigram table on the current token + {fmt(r['skip'], 1)} x a skip-bigram table on "
        f"the token before it (Dirichlet rows, concentration {r['concentration']}): in-weights learning pays, and a "
        "previous-token head pays by itself."),
        (f"- Repeats: each sequence of {r['n_ctx']} tokens is laid out left to right: {r['gap'][0]}-{r['gap'][1]} "
        f"tokens of background{_first_gap(r)}, then a segment of uniformly random tokens of length "
        f"{r['segment_len'][0]}-{r['segment_len'][1]} ({_length_dist(r)}, at most half of what is left) written "
        f"{r['copies'][0]}-{r['copies'][1]} times in "
        "a row (fewer if they do not fit), and again while room is left: one long repeat or several short ones. "
        f"A share {fmt(1 - r['bos_prob'], 2)} of the sequences has no `<|bos|>` (position 0 is an ordinary token). "
        "Offsets and lengths vary per sequence, so no fixed position solves the task: only an induction head "
        "predicts the later copies."
        + (f" A share {fmt(r['short_prob'], 2)} of the batches holds sequences of {r['short_len']} tokens only "
           "(cheaper steps; the induction head forms sooner)." if r.get("short_prob") else "")),
        "",
        "## Architecture",
        "",
        (f"GPT-2: {r['n_layers']} layers, {r['n_heads']} heads, d_model {r['d_model']}, d_mlp {r['d_mlp']}, "
        f"context {r['n_ctx']}, vocabulary {r['n_tokens'] + 3}, untied unembedding, no dropout; "
        f"{fig['n_parameters']:,} parameters. Initialisation: token embeddings N(0, {r['embed_std']}), "
        + ("position embeddings the sines and cosines of Vaswani et al. (2017) scaled to unit variance (trained "
           "from there: a shift by one position is then one rotation, which a previous-token head learns once for "
           "all positions), " if r.get("pos_init") == "sinusoidal" else f"position embeddings N(0, {r['embed_std']}), ")
        + f"other weights N(0, {r['init_std']}) (GPT-2's 0.02 makes attention learn far more slowly at this width)."),
        "",
        *training_section(fig),
        "## Phase change",
        "",
        *_phase_lines(pc, r["train"], r["probe_half_len"]),
        "",
        ("The run's history ships as `training_history.safetensors` (every head's scores, the losses on a probe "
         f"and every head's attention on it, every {r.get('history_every', 10)} steps): "
         "`kit.widgets.TrainingScrubber(kit.train.TrainingHistory.load(path))` scrubs through it."),
        "",
        "## Figures measured on these weights",
        "",
        (f"Scores follow TransformerLens conventions (`kit.head_scores`, eager attention, {s['n_seqs']} random "
        f"sequences, seed {s['seed']}, each starting with `<|bos|>`, which counts as the first position: the "
        "defaults of `kit.analysis.prev_token_scores(model)` and `kit.analysis.induction_scores(model)`, which "
        "give these numbers)."),
        "",
        *figures_table([
            ("best previous-token score, layer 0",
             f"{fmt(m['prev_token_score'])} (head L0H{m['prev_token_head']})",
             f"mean attention from position i to i-1 on {T_prev} random tokens after `<|bos|>`"),
            ("best induction score, layer 1",
             f"{fmt(m['induction_score'])} (head L1H{m['induction_head']})",
             f"mean attention from each token of the second copy to the token after its first occurrence, {T}+{T} tokens"),
            ("loss on the first copy", f"{fmt(m['loss_first_copy'])} nats", f"mean next-token loss on tokens 2..{T} of {T} random tokens"),
            ("loss on the second copy", f"{fmt(m['loss_second_copy'])} nats", f"tokens 2..{T} of the same tokens repeated"),
            ("second / first", fmt(m["loss_ratio"]), "ratio of the two"),
            *_control_rows(fig),
        ]),
        *_curve_lines(fig),
        *_offset_lines(fig),
        ("Re-measure with `python -m kit.train induction-2l --measure kit/zoo/induction-2l` (prints the figures, "
        "the whole curve and the offset table as JSON); `tests/test_zoo_induction.py` checks every figure of this "
        "card, and every point of the curve and of the offset table, against the weights and the log."),
        "",
    ]


RATIO_TARGET = 0.2  # the loss on the second copy should be at most this share of the first


SHORT_NOTE = (", not below (short repeats: the copy is predicted, but less surely: token 2 of a copy rests on a "
              "single matching token, and one token in T - 1 weighs more in a short copy; "
              "`docs/induction_short_repeats.md`: the recipes tried)")


def ratio_holds_from(curve: list[dict], bos: bool) -> int | None:
    """The shortest repeat length T from which the loss ratio stays at most ``RATIO_TARGET`` for every longer
    T (with or without ``<|bos|>``); ``None`` when it fails at the longest."""
    part = sorted((c for c in curve if c["bos"] == bos), key=lambda c: c["half_len"])
    start = None
    for c in reversed(part):
        if c["loss_ratio"] > RATIO_TARGET:
            break
        start = c["half_len"]
    return start


def _curve_lines(fig: dict) -> list[str]:
    """The induction head across repeat lengths, with and without ``<|bos|>`` (``figures["curve"]``)."""
    curve = fig.get("curve")
    if not curve:
        return []
    out = ["## Across repeat lengths, with and without `<|bos|>`", "",
           ("Random tokens of length T repeated twice, with and without a first `<|bos|>`; best induction score "
            "of layer 1 (and its head) and the loss on tokens 2..T of the second copy over that of the first "
            "(32 sequences, seed 0), for every T from 4 to half the context. Each copy's first token is left "
            "out of both losses: in the second copy it cannot be predicted (nothing yet says the sequence "
            "repeats), so tokens 2..T are what induction predicts. Selected lengths:"), "",
           "| T | with `<|bos|>`: score (head), loss ratio | without: score (head), loss ratio |", "|---|---|---|"]
    rows = {(c["bos"], c["half_len"]): c for c in curve}
    longest = max(c["half_len"] for c in curve)
    shown = [t for t in (4, 5, 6, 8, 12, 16, 24, 32, 40, 48, 56, longest - 1, longest) if any(k[1] == t for k in rows)]
    cell = lambda c: f"{fmt(c['induction_score'])} (L1H{c['induction_head']}), {fmt(c['loss_ratio'])}" if c else "-"
    for t in sorted(set(shown)):
        out.append(f"| {t} | {cell(rows.get((True, t)))} | {cell(rows.get((False, t)))} |")
    out.append("")
    for bos in (True, False):
        part = [c for c in curve if c["bos"] == bos]
        worst_s = min(part, key=lambda c: c["induction_score"])
        worst_r = max(part, key=lambda c: c["loss_ratio"])
        from_t = ratio_holds_from(curve, bos)
        holds = (f"the loss ratio is at most {RATIO_TARGET} for every T from {from_t} on"
                 + (SHORT_NOTE if from_t > part[0]["half_len"] else "") if from_t is not None
                 else f"the loss ratio exceeds {RATIO_TARGET} somewhere at every length")
        out.append(f"- {'With' if bos else 'Without'} `<|bos|>`, over every T from {part[0]['half_len']} to "
                   f"{part[-1]['half_len']}: the lowest best score is {fmt(worst_s['induction_score'])} (T = "
                   f"{worst_s['half_len']}), the highest loss ratio {fmt(worst_r['loss_ratio'])} (T = "
                   f"{worst_r['half_len']}); {holds}.")
    return out + [""]


def _offset_lines(fig: dict) -> list[str]:
    """The same curve when random tokens come before the first copy (``figures["offset_curve"]``)."""
    rows = fig.get("offset_curve")
    if not rows:
        return []
    lengths = sorted({c["half_len"] for c in rows})
    keys = sorted({(c["bos"], c["prefix"]) for c in rows}, key=lambda k: (not k[0], k[1]))
    at = {(c["bos"], c["prefix"], c["half_len"]): c for c in rows}
    out = ["## When the repeat does not start the sequence", "",
           ("The curve above starts the first copy at once. Here P uniformly random tokens come first (after "
            "`<|bos|>` where there is one), then the same copies; each cell is the best layer-1 induction score "
            "and the loss ratio (tokens 2..T of each copy), 32 sequences, seed 0 (the prefix from seed 1); "
            "\"-\" where the copies do not fit the context."), "",
           "| `<|bos|>`, P | " + " | ".join(f"T = {t}" for t in lengths) + " |",
           "|---|" + "---|" * len(lengths)]
    for bos, P in keys:
        cells = [f"{fmt(c['induction_score'])}, {fmt(c['loss_ratio'])}" if (c := at.get((bos, P, t))) else "-"
                 for t in lengths]
        out.append(f"| {'with' if bos else 'without'}, {P} | " + " | ".join(cells) + " |")
    out.append("")
    worst = min(rows, key=lambda c: c["induction_score"])
    over = [c for c in rows if c["loss_ratio"] > RATIO_TARGET]
    holds = sorted({c["half_len"] for c in rows if all(
        d["loss_ratio"] <= RATIO_TARGET for d in rows if d["half_len"] >= c["half_len"])})
    out.append(f"- The lowest best induction score is {fmt(worst['induction_score'])} (T = {worst['half_len']}, "
               f"P = {worst['prefix']}, {'with' if worst['bos'] else 'without'} `<|bos|>`).")
    if over and holds:
        top = max(over, key=lambda c: c["loss_ratio"])
        out.append(f"- The loss ratio exceeds {RATIO_TARGET} in {len(over)} of {len(rows)} cells, all at T <= "
                   f"{max(c['half_len'] for c in over)} (highest {fmt(top['loss_ratio'])}: T = {top['half_len']}, "
                   f"P = {top['prefix']}); it is at most {RATIO_TARGET} in every cell from T = {holds[0]} on. "
                   "After random tokens, token 2 of a short copy rests on one match that the prefix makes less "
                   "sure (a single earlier occurrence of a token is often chance), so short repeats are predicted "
                   "less surely than at the start of a sequence, where the training data puts many of them.")
    elif over:  # e.g. a model with no induction head: no length from which the ratio holds
        top = max(over, key=lambda c: c["loss_ratio"])
        out.append(f"- The loss ratio exceeds {RATIO_TARGET} in {len(over)} of {len(rows)} cells, the longest "
                   f"repeats included (highest {fmt(top['loss_ratio'])}: T = {top['half_len']}, P = {top['prefix']}).")
    else:
        out.append(f"- The loss ratio is at most {RATIO_TARGET} in every cell.")
    return out + [""]


def _facts_card(fig: dict) -> list[str]:
    r, m, w = fig["recipe"], fig["measured"], fig["world"]
    per_rel = [(f"held-out templates, `{k[len('acc_held_out_'):]}`", fmt(v), "top-1 first answer token")
               for k, v in sorted(m.items()) if k.startswith("acc_held_out_") and k != "acc_held_out_templates"]
    return [
        f"# {fig['model']}",
        "",
        (f"A {r['n_layers']}-layer GPT-2 (`GPT2LMHeadModel`) that has memorised the facts of an invented world, "
        "for causal tracing, attention knockout and MLP-feature lessons. "
        "It loads with `AutoModelForCausalLM.from_pretrained` and `kit.load(\"facts-4l\")`; "
        "the world ships as `world.json` (`kit.train.world.load_world()`)."),
        "",
        "## Data",
        "",
        (f"- World (seed {r['world_seed']}, pronounceable names from a seeded generator): {w['countries']} countries "
        f"(capital, language, continent, currency) and {w['people']} people (birthplace, profession): "
        f"{w['entities']} entities, {w['facts']} facts, {w['relations']} relations."),
        (f"- Templates: {w['templates_per_relation']} English templates per relation, of which "
        f"{w['held_out_per_relation']} are held out (never trained on). Prompts end just before the answer "
        f"({json.dumps(w['example']['prompt'])} -> {json.dumps(w['example']['answer'])}), with the subject before "
        "the last position."),
        (f"- Training text: each fact in each training template; each sequence packs 1 to 3 random sentences "
        f"(`<|bos|>` sentence `.` ... `<|eos|>`): {w['train_sentences']} sentences."
        + (f" A fraction {r['records']} of the sequences are entity records instead: 1 to {r['max_sentences']} "
           "records, each an entity's name followed by all its answers in random order (`<country> <capital> "
           "<language> <continent> <currency>.`, shuffled), so the token after a name has to predict the "
           "entity's attributes, as in the lists and tables of real text; this is what moves the fact lookup "
           "to the subject's last token (`docs/factual_recall_experiments.md`)." if r.get("records") else "")),
        (f"- Tokenizer: byte-level BPE (GPT-2 style, leading-space convention), vocabulary {r['vocab_size']}, "
        "trained on the training sentences with template words and answers counted per sentence and subject names "
        f"once: answers are single tokens, subjects span {fmt(w['subject_tokens_mean'], 2)} tokens on average "
        f"({100 * w['subject_multi_token_fraction']:.0f} % of them more than one)."),
        "",
        "## Architecture",
        "",
        (f"GPT-2: {r['n_layers']} layers, {r['n_heads']} heads, d_model {r['d_model']}, d_mlp {r['d_mlp']}, "
        f"context {r['n_ctx']}, tied embeddings, no dropout, initialisation N(0, {r['init_std']}); "
        f"{fig['n_parameters']:,} parameters."),
        "",
        *training_section(fig),
        "## Figures measured on these weights",
        "",
        ("Top-1 accuracy of the first answer token after the prompt, over every fact "
        "(`kit.train.facts.answer_accuracy`)."),
        "",
        *figures_table([
            ("training templates", fmt(m["acc_train_templates"]), f"{w['train_sentences']} prompts"),
            ("held-out templates", fmt(m["acc_held_out_templates"]), f"{w['held_out_prompts']} prompts"),
            *per_rel,
        ]),
        ("Re-measure with `python -m kit.train facts-4l --measure kit/zoo/facts-4l`; "
        "`tests/test_zoo_facts.py` checks every figure of this card against the weights."),
        "",
    ]


def render_card(figures: dict) -> str:
    """The Markdown model card for ``figures`` (the content of ``figures.json``)."""
    kind = figures["recipe_kind"]
    lines = {"induction": _induction_card, "facts": _facts_card, "ioi": ioi_card}[kind](figures)
    return "\n".join(lines)
