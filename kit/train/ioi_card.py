"""The model card of ``ioi-3l``: a pure function of its ``figures.json`` (as ``kit.train.card`` for the others)."""

from __future__ import annotations

from kit.train.card_common import figures_table, fmt, training_section

__all__ = ["head_roles", "ioi_card", "render_ioi_card"]

ROLE_RESTORE = 0.2  # a head "matters" when patching it alone restores >= 20 % of the logit difference
ROLE_ATTN = 0.3  # an attention figure "counts" at >= 0.3


def head_roles(heads: dict) -> dict[str, list[str]]:
    """Heads named by their measured figures (``heads``: ``measured["heads"]`` of ``figures.json``).

    ``"answer"``: patching the head alone restores >= 20 % of the logit difference, and at END it attends to
    IO more than to S1; ``"subject_to_end"``: at END it attends to S2 >= 0.3 and to S1 < 0.3 (it finds the
    repeated name); ``"duplicate"``: at S2 it attends to S1 >= 0.3 (a duplicate-token head).
    """
    name = lambda l, h: f"L{l}H{h}"  # noqa: E731
    L, H = len(heads["patch_restores"]), len(heads["patch_restores"][0])
    cells = [(l, h) for l in range(L) for h in range(H)]
    get = lambda k, l, h: heads[k][l][h]  # noqa: E731
    return {
        "answer": [name(l, h) for l, h in cells if get("patch_restores", l, h) >= ROLE_RESTORE
                   and get("attn_END_IO", l, h) > get("attn_END_S1", l, h)],
        "subject_to_end": [name(l, h) for l, h in cells if get("attn_END_S2", l, h) >= ROLE_ATTN
                           and get("attn_END_S1", l, h) < ROLE_ATTN],
        "duplicate": [name(l, h) for l, h in cells if get("attn_S2_S1", l, h) >= ROLE_ATTN],
    }


def _head_rows(heads: dict) -> list[str]:
    out = ["| head | END->IO | END->S1 | END->S2 | S2->S1 | patch restores |", "|---|---|---|---|---|---|"]
    for l, row in enumerate(heads["patch_restores"]):
        for h, restore in enumerate(row):
            cells = [fmt(heads[k][l][h], 2) for k in ("attn_END_IO", "attn_END_S1", "attn_END_S2", "attn_S2_S1")]
            out.append(f"| L{l}H{h} | " + " | ".join(cells) + f" | {fmt(restore, 2)} |")
    return out + [""]


def _roles_lines(heads: dict) -> list[str]:
    roles = head_roles(heads)
    say = lambda xs: ", ".join(xs) if xs else "none"  # noqa: E731
    return [
        f"- Heads that carry the answer (patching one alone restores >= {ROLE_RESTORE:g} of the logit "
        f"difference, and at END they look at IO more than at S1): {say(roles['answer'])}.",
        f"- Heads that bring the repeated name to END (at END: S2 >= {ROLE_ATTN:g}, S1 < {ROLE_ATTN:g}): "
        f"{say(roles['subject_to_end'])}. In this data S2 is always the most recent name, so a head can find it "
        "by position, without first marking it as a duplicate.",
        f"- Duplicate-token heads (at S2, attention to S1 >= {ROLE_ATTN:g}): {say(roles['duplicate'])}."
        + ("" if roles["duplicate"] else " No head passes this threshold: the model did not form a clean "
           "duplicate-token head."),
        "",
    ]


def ioi_card(fig: dict) -> list[str]:
    """The card's lines."""
    r, m, s = fig["recipe"], fig["measured"], fig["measure_settings"]
    heads = m["heads"]
    return [
        f"# {fig['model']}",
        "",
        (f"A {r['n_layers']}-layer GPT-2 (`GPT2LMHeadModel`) trained from scratch on indirect-object "
         "identification with invented names, for the circuit lesson (activation and path patching, "
         "attribution patching, QK/OV circuits, ablations). It loads with `AutoModelForCausalLM.from_pretrained` "
         "and `kit.load(\"ioi-3l\")`."),
        "",
        "## Data",
        "",
        (f"- A prompt names two people, repeats one (the subject S) and ends before the other (the indirect "
         f"object IO): `{fig['templates'][0]}` -> IO, with {{S}} one of {{A}}, {{B}}. {len(fig['names'])} "
         f"invented names (`{'`, `'.join(fig['names'][:4])}`, ...), {len(fig['templates'])} training templates, "
         "8 places, 8 objects, 0-1 adverb after S2 and 0-2 adjectives before the object (so S2 sits at a "
         "varying distance from the end); which name comes first (ABBA / BABA) is drawn per prompt."),
        (f"- {len(fig['held_out_templates'])} held-out templates, never trained on, e.g. "
         f"`{fig['held_out_templates'][0]}`."),
        ("- Word-level tokenizer (words and punctuation separated by spaces), `<|bos|>` first; the training "
         "loss counts only the answer token."),
        "",
        "## Architecture",
        "",
        (f"GPT-2: {r['n_layers']} layers, {r['n_heads']} heads, d_model {r['d_model']}, d_mlp {r['d_mlp']}, "
         f"context {r['n_ctx']}, untied unembedding, no dropout; {fig['n_parameters']:,} parameters. "
         f"Initialisation: embeddings N(0, {r['embed_std']}), other weights N(0, {r['init_std']})."),
        "",
        *training_section(fig),
        (f"Answer accuracy on 256 training-template prompts (probed every {r['train']['probe_every']} steps) "
         f"first reaches 0.9 at step {fig['training']['first_step_acc_train_0.9']}."),
        "",
        "## Figures measured on these weights",
        "",
        *figures_table([
            ("accuracy, training templates", fmt(m["accuracy_train"]),
             f"top-1 answer = IO, {s['n_prompts']} prompts (seed {s['seed']})"),
            ("logit difference IO - S, training templates", fmt(m["logit_diff_train"], 2), "mean over the same prompts"),
            ("accuracy, held-out templates", fmt(m["accuracy_held_out"]), f"{s['n_prompts']} prompts"),
            ("logit difference IO - S, held-out templates", fmt(m["logit_diff_held_out"], 2), "mean"),
            ("logit difference, clean / corrupted (ABC)",
             f"{fmt(heads['logit_diff_clean'], 2)} / {fmt(heads['logit_diff_corrupted'], 2)}",
             f"{s['head_prompts']} prompts of template {s['head_template']}, S2 replaced by a third name C"),
        ]),
        "## Heads",
        "",
        (f"On {s['head_prompts']} prompts of `{fig['templates'][s['head_template']]}` ({s['adverbs']} adverb, "
         f"{s['adjectives']} adjective): mean attention between the named positions, and the fraction of the "
         "logit difference that patching the head's clean output (every position) into the corrupted run "
         "restores (`kit.train.ioi.head_figures`)."),
        "",
        *_head_rows(heads),
        *_roles_lines(heads),
        ("Re-measure with `python -m kit.train ioi-3l --measure kit/zoo/ioi-3l`; `tests/test_zoo_ioi.py` checks "
         "every figure of this card against the weights, and lesson 05 traces the circuit with `kit.analysis`."),
        "",
    ]


def render_ioi_card(figures: dict) -> str:
    """The Markdown model card for ``figures`` (the content of ``figures.json``)."""
    return "\n".join(ioi_card(figures))
