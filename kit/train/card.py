"""Model cards, rendered from the figures measured on the shipped weights (``figures.json``).

``render_card(figures)`` is a pure function of the figures, so a test can
re-measure the weights, compare with ``figures.json``, and check that
``MODEL_CARD.md`` is exactly the card of those figures: the card never claims
a number that was not measured.
"""

from __future__ import annotations

import json

__all__ = ["render_card"]


def _f(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}"


def _training_section(fig: dict) -> list[str]:
    t = fig["training"]
    cfg = fig["recipe"]["train"]
    return [
        "## Training",
        "",
        "```bash",
        fig["command"],
        "```",
        "",
        (f"- Seed {cfg['seed']}; {cfg['steps']} steps of batch {cfg['batch_size']}; AdamW (lr {cfg['lr']:g}, "
        f"betas ({cfg['beta1']}, {cfg['beta2']}), weight decay {cfg['weight_decay']} on matrices), "
        f"linear warm-up over {cfg['warmup_steps']} steps then cosine decay to {cfg['min_lr_ratio']:g} x lr, "
        f"gradient clipping at {cfg['grad_clip']}."),
        (f"- Wall time {_f(t['wall_time_s'], 1)} s (CPU time {_f(t['cpu_time_s'], 1)} s) on {t['device']} with "
        f"{t['threads']} thread{'s' if t['threads'] > 1 else ''}, on a shared 2-core machine; torch {t['torch']}, transformers {t['transformers']}."),
        ("- The per-step log ships as `training_log.json` "
        "(`kit.train.TrainLog.from_json(path).chart()` draws it)."),
        "",
    ]


def _figures_table(rows: list[tuple[str, str, str]]) -> list[str]:
    out = ["| figure | value | measured by |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return out + [""]


def _phase_lines(pc: dict, train: dict, T: int) -> list[str]:
    head = (f"In the training log, the best induction score of layer 1 (probed every {train['probe_every']} steps "
            f"on 8 random sequences of {T} tokens repeated twice)")
    if pc["induction_crosses_half"] is None or pc["repeated_loss_drop"] is None:
        return [f"{head} never reached 0.5 in this run: no phase change."]
    gap = abs(pc["induction_crosses_half"] - pc["repeated_loss_drop"])
    return [
        (f"{head} first reaches 0.5 at step {pc['induction_crosses_half']}, and the training loss on repeated "
        f"tokens falls fastest at step {pc['repeated_loss_drop']} (largest drop between the means of the 25 steps "
        f"before and after): {gap} steps apart, {_f(100 * gap / train['steps'], 1)} % of training.")
    ]


def _control_rows(fig: dict) -> list[tuple[str, str, str]]:
    if "control" not in fig:
        return []
    return [(
        "1-layer control: loss on repeated tokens", f"{_f(fig['control']['loss_repeated'])} nats",
        ("`python -m kit.train induction-1l` (same recipe, 1 layer): mean training loss on repeated tokens over the "
        f"last 50 steps (this model: {_f(fig['training']['loss_repeated_last50'])})"),
    )]


def _induction_card(fig: dict) -> list[str]:
    r, m, t = fig["recipe"], fig["measured"], fig["training"]
    s = fig["measure_settings"]
    pc = t["phase_change"]
    T = s["half_len"]
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
        "(ids 3-63); a word-level tokenizer splits text on spaces and puts `<|bos|>` first."),
        (f"- Background: a fixed random language (seed {r['language_seed']}) in which the next token is drawn from "
        f"{_f(1 - r['skip'], 1)} x a bigram table on the current token + {_f(r['skip'], 1)} x a skip-bigram table on "
        f"the token before it (Dirichlet rows, concentration {r['concentration']}): in-weights learning pays, and a "
        "previous-token head pays by itself."),
        (f"- Repeats: in every sequence of {r['n_ctx']} tokens (`<|bos|>` included), a segment of uniformly random "
        f"tokens of length {r['segment_len'][0]}-{r['segment_len'][1]} appears {r['copies'][0]}-{r['copies'][1]} "
        "times in a row (as many as fit) at a random offset; the rest is background. Offsets and lengths vary per "
        "sequence, so no fixed position solves the task: only an induction head predicts the later copies."),
        "",
        "## Architecture",
        "",
        (f"GPT-2: {r['n_layers']} layers, {r['n_heads']} heads, d_model {r['d_model']}, d_mlp {r['d_mlp']}, "
        f"context {r['n_ctx']}, vocabulary {r['n_tokens'] + 3}, untied unembedding, no dropout; "
        f"{fig['n_parameters']:,} parameters. Initialisation: token and position embeddings N(0, {r['embed_std']}), "
        f"other weights N(0, {r['init_std']}) (GPT-2's 0.02 makes attention learn far more slowly at this width)."),
        "",
        *_training_section(fig),
        "## Phase change",
        "",
        *_phase_lines(pc, r["train"], T),
        "",
        "## Figures measured on these weights",
        "",
        (f"Scores follow TransformerLens conventions (`kit.train.metrics`, eager attention, {s['n_seqs']} random "
        f"sequences, seed {s['seed']}, each starting with `<|bos|>`)."),
        "",
        *_figures_table([
            ("best previous-token score, layer 0",
             f"{_f(m['prev_token_score'])} (head L0H{m['prev_token_head']})",
             "mean attention from position i to i-1 on random tokens"),
            ("best induction score, layer 1",
             f"{_f(m['induction_score'])} (head L1H{m['induction_head']})",
             f"mean attention from each token of the second copy to the token after its first occurrence, {T}+{T} tokens"),
            ("loss on the first copy", f"{_f(m['loss_first_copy'])} nats", f"mean next-token loss, random {T} tokens"),
            ("loss on the second copy", f"{_f(m['loss_second_copy'])} nats", "same sequences repeated (every token of the copy)"),
            ("second / first", _f(m["loss_ratio"]), "ratio of the two"),
            *_control_rows(fig),
        ]),
        ("Re-measure with `python -m kit.train induction-2l --measure kit/zoo/induction-2l`; "
        "`tests/test_zoo_induction.py` checks every figure of this card against the weights and the log."),
        "",
    ]


def _facts_card(fig: dict) -> list[str]:
    r, m, w = fig["recipe"], fig["measured"], fig["world"]
    per_rel = [(f"held-out templates, `{k[len('acc_held_out_'):]}`", _f(v), "top-1 first answer token")
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
        f"once: answers are single tokens, subjects span {_f(w['subject_tokens_mean'], 2)} tokens on average "
        f"({100 * w['subject_multi_token_fraction']:.0f} % of them more than one)."),
        "",
        "## Architecture",
        "",
        (f"GPT-2: {r['n_layers']} layers, {r['n_heads']} heads, d_model {r['d_model']}, d_mlp {r['d_mlp']}, "
        f"context {r['n_ctx']}, tied embeddings, no dropout, initialisation N(0, {r['init_std']}); "
        f"{fig['n_parameters']:,} parameters."),
        "",
        *_training_section(fig),
        "## Figures measured on these weights",
        "",
        ("Top-1 accuracy of the first answer token after the prompt, over every fact "
        "(`kit.train.facts.answer_accuracy`)."),
        "",
        *_figures_table([
            ("training templates", _f(m["acc_train_templates"]), f"{w['train_sentences']} prompts"),
            ("held-out templates", _f(m["acc_held_out_templates"]), f"{w['held_out_prompts']} prompts"),
            *per_rel,
        ]),
        ("Re-measure with `python -m kit.train facts-4l --measure kit/zoo/facts-4l`; "
        "`tests/test_zoo_facts.py` checks every figure of this card against the weights."),
        "",
    ]


def render_card(figures: dict) -> str:
    """The Markdown model card for ``figures`` (the content of ``figures.json``)."""
    kind = figures["recipe_kind"]
    lines = {"induction": _induction_card, "facts": _facts_card}[kind](figures)
    return "\n".join(lines)
