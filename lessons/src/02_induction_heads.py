# %% [markdown]
# # 02 · Induction heads
#
# If a text contains `… A B … A`, a good guess for the next token is `B`. Transformers learn to make
# this guess with a two-head circuit: an **induction head** at the second `A` looks back at the token
# that followed the first `A`, and copies it. In this lesson you train a tiny model that learns it, in
# seconds, watch the circuit appear suddenly, and then take the shipped model apart.
#
# **Learning goals**
# - watch the **phase change** by scrubbing through training: the previous-token head forms, then the
#   induction score jumps and the loss on repeated tokens falls with it, and a 1-layer model never gets
#   there;
# - measure **previous-token** and **induction scores** from attention patterns, and write both yourself;
# - test the circuit causally: **ablate** heads and measure the loss on the second copy of a sequence;
# - see the **K-composition** between the previous-token head and the induction heads in the weights.
#
# **Prerequisites**: lesson 01 (attention patterns `[batch, head, query, key]`, the residual stream as a
# sum of head outputs); indexing and averaging tensors in PyTorch.
#
# **Model**: `induction-2l`, a 2-layer GPT-2 with 4 heads per layer (`d_model` 64), trained by the kit on
# text in which random segments repeat (`kit/zoo/induction-2l/MODEL_CARD.md`). Runs offline on a CPU;
# the two training runs take about a minute and a half on one quiet CPU thread.

# %%
from dataclasses import replace

import altair as alt
import torch

import kit
from kit.analysis import composition_scores
from kit.charts import bars, head_heatmap
from kit.lessons.induction import (
    INDUCTION_THRESHOLD, ablation_table, check_ablation_prediction, check_heads, check_induction_score,
    check_prev_token_score, copy_losses, exercise_half_len, induction_score_of, repeated_ids,
)
from kit.train import InductionRecipe, induction_scores, phase_change, prev_token_scores, train_induction
from kit.train.induction import build_induction_model, induction_task, induction_tokenizer
from kit.widgets import AttentionViewer, TrainingScrubber

torch.manual_seed(0)
torch.set_num_threads(1)  # one thread: training is seeded, so every run of this notebook gives the same model

# %% [markdown]
# ## The training data
#
# `induction-2l` learns from sequences of up to 128 tokens (syllables such as `ba`, `ko`) written in a
# random "language" of its own (each token depends on the one or two before it), in which segments of
# uniformly random tokens repeat: one long segment or several short ones (from 4 tokens up to half the
# context, short ones common), each written two or three times in a row, at random places, often right at
# the start, and half of the sequences without the `<|bos|>` token. The language can be learnt by heart;
# the segments cannot: the only way to predict a later copy is to look back at the earlier one.
# Here is the start of one training sequence, with the tokens that only induction can predict in
# `[brackets]`:

# %%
recipe = InductionRecipe().with_train(device="cpu")  # the shipped recipe: this run remakes the shipped model
tokenizer = induction_tokenizer(recipe)
batch = induction_task(recipe).batch(1, torch.Generator().manual_seed(1))
tokens = tokenizer.convert_ids_to_tokens(batch.input_ids[0].tolist())
print(" ".join(f"[{t}]" if rep else t for t, rep in zip(tokens, batch.groups["repeated"][0].tolist()))[:400], "...")

# %% [markdown]
# ## Train it live and scrub through the phase change
#
# `train_induction` runs the seeded training loop of `kit.train` (AdamW, warm-up then cosine decay) and
# logs, at every step, the loss on the repeated tokens (`loss_repeated`) and on the rest
# (`loss_background`). With `history=True` it also keeps a **training history**: every 20 steps, every
# head's previous-token and induction score (defined below), the loss on a probe (16 random tokens,
# then the same 16 again), and every head's attention pattern on that probe.
#
# `TrainingScrubber` shows the history. Drag the slider (or click it and use the arrow keys, Home, End,
# PageUp, PageDown) through training; click a cell of a score grid to choose a head; its pattern on the
# probe is drawn on the right, with the stripe an induction head should find dashed. The dashed line in
# the loss chart marks the step at which the best induction score of layer 1 first reaches 0.5.

# %%
result = train_induction(recipe, history=True)  # about a minute on one quiet CPU thread, more on a busy one
log, history = result.log, result.history
print(f"trained {len(log.rows)} steps in {log.wall_time_s:.0f} s; {len(history)} snapshots in the history")
scrubber = TrainingScrubber(history, layer=1)
scrubber

# %% [markdown]
# **Scrub to the moment the induction head appears.** Start at step 0 and move forward until a head of
# layer 1 shows the dashed stripe in its pattern. Then go back a little and look at layer 0: *what changed
# first*, the previous-token head (a stripe just below the diagonal in a layer-0 head), the induction head
# (the dashed stripe in layer 1), or the loss on the repeated copy? Write down your answer, then compare it
# with what the history says:

# %%
# NBVAL_CHECK_OUTPUT
steps = history.steps
best_prev = [float(s[0].max()) for s in history.prev_token]  # best previous-token score of layer 0
best_ind = [float(s[1].max()) for s in history.induction]  # best induction score of layer 1
first_step = lambda values, threshold: next(s for s, v in zip(steps, values) if v >= threshold)  # noqa: E731
print("the previous-token score reaches 0.3 at least 200 steps before the induction score does:",
      first_step(best_ind, 0.3) - first_step(best_prev, 0.3) >= 200)
i = steps.index(first_step(best_ind, 0.8))
print("when the induction score passes 0.8, the loss on the repeated copy is below half its start:",
      history.loss_repeated[i] < 0.5 * history.loss_repeated[0])
print("while the loss on the plain copy has not fallen:", history.loss_plain[i] > 0.9 * history.loss_plain[0])

# %% [markdown]
# The previous-token head starts first: its score climbs slowly from the start (it pays by itself: in the
# background language the token two back helps predict the next one), while the induction score stays
# flat, because an induction head has nothing to look for until a previous-token head writes it. Then both
# jump together within a few snapshots, and the loss on the repeated copy falls with them while the loss
# on the plain copy (random tokens, which nothing can predict) stays where it was. `phase_change`
# finds, in the per-step log, the step at which the induction score first reaches 0.5 and the step at
# which the loss on repeated tokens falls fastest (the largest drop between the means of the 25 steps
# before and after):

# %%
pc = phase_change(log)
pc

# %%
# NBVAL_CHECK_OUTPUT
steps_logged, score = log.series("induction_score")
EARLY_STEPS, CLIMB_STEPS = 500, 150
early = max(v for s, v in zip(steps_logged, score) if s <= EARLY_STEPS)
last_low = max(s for s, v in zip(steps_logged, score) if v < 0.2)
first_high = min(s for s, v in zip(steps_logged, score) if v > 0.8)
print(f"induction score stays below 0.3 for the first {EARLY_STEPS} steps:", early < 0.3)
print("it ends above 0.8:", score[-1] > 0.8)
print(f"it climbs from below 0.2 to above 0.8 within {CLIMB_STEPS} steps:", 0 < first_high - last_low <= CLIMB_STEPS)
print("it crosses 0.5 within 50 steps of the steepest drop of the repeated-token loss:",
      abs(pc["induction_crosses_half"] - pc["repeated_loss_drop"]) <= 50)

# %% [markdown]
# ### The control: one layer is not enough
#
# An induction head needs to know, at every earlier position, *which token came before it*, and that
# information has to be written there by an earlier layer (the previous-token head). A 1-layer model
# has no earlier layer. Train one with the same recipe and compare:

# %%
control = train_induction(replace(recipe, n_layers=1))  # a little faster than 2 layers
print(f"trained the control in {control.log.wall_time_s:.0f} s")


def mean_last(log, name, n=50):
    values = log.series(name)[1][-n:]
    return sum(values) / len(values)


loss_runs = [
    {"step": s, "loss on repeated tokens": v, "model": name}
    for name, lg in [("2 layers", log), ("1 layer (control)", control.log)]
    for s, v in zip(*lg.series("loss_repeated")) if s % 5 == 0
]
alt.Chart(alt.Data(values=loss_runs)).mark_line().encode(
    x="step:Q", y="loss on repeated tokens:Q", color="model:N"
).properties(width=480, height=200)

# %%
# NBVAL_CHECK_OUTPUT
print("1-layer control: induction score never reaches 0.3:", max(control.log.series("induction_score")[1]) < 0.3)
print("its final loss on repeated tokens is higher by more than 1.5 nats:",
      mean_last(control.log, "loss_repeated") - mean_last(log, "loss_repeated") > 1.5)

# %% [markdown]
# ## The shipped model: find the heads
#
# From here on we study the shipped `induction-2l`: the model you just trained (same recipe, same seed,
# one thread: the same weights; its training history ships with it, `TrainingHistory.load("induction-2l")`).
# Two scores,
# each computed from attention patterns (conventions of TransformerLens and ARENA):
#
# - the **previous-token score** of a head: on random tokens, the mean attention from each position `i`
#   to position `i - 1` (the first sub-diagonal of the pattern);
# - the **induction score**: on a random sequence of `T` tokens repeated twice, the mean attention from
#   each token of the second copy to the token *after* its first occurrence (query `i`, key `i - T + 1`).
#   ARENA calls a head with a score above 0.4 an induction head.
#
# Both are defined once, in `kit.head_scores`, with the `<|bos|>` token first (as TransformerLens puts it);
# `kit.train.prev_token_scores` and `kit.train.induction_scores` compute them for a model
# (`scores[layer, head]`; `kit.analysis` gives the same numbers for any traced model):

# %%
model = kit.load("induction-2l", device="cpu")
prev = prev_token_scores(model.hf)  # [layer, head], 32 random sequences of 50 tokens after <|bos|>
ind = induction_scores(model.hf, half_len=16)  # [layer, head], 32 random sequences of 16 tokens, twice
head_heatmap(prev, "previous-token score") | head_heatmap(ind, "induction score")

# %%
# NBVAL_CHECK_OUTPUT
for name, scores in [("previous-token", prev), ("induction", ind)]:
    print(f"{name} scores [layer, head]:")
    for l in range(model.n_layers):
        print(f"  layer {l}:", "  ".join(f"H{h} {float(scores[l, h]):.2f}" for h in range(model.n_heads)))

# %% [markdown]
# Look at the patterns on one repeated random sequence (`<|bos|>`, 16 random tokens, the same 16 again).
# Zoom into L0H0: a stripe just below the diagonal (each token looks at the one before it). Zoom into a
# head of layer 1: in the second half, a stripe 15 positions back (each token looks at the token that
# followed its earlier occurrence). The scores appear in the viewer too.

# %%
T = 16
ids = repeated_ids(model, n_seqs=1, half_len=T, seed=0)  # [1, 1 + 2T]
AttentionViewer(model.trace(ids, capture=["pattern"]), scores={"prev_token": prev, "induction": ind}, layer=1)

# %% [markdown]
# ### Exercise 2.1: the previous-token score
#
# Write `prev_token_score(pattern)`: given `pattern[batch, head, query, key]` of one layer on random
# tokens, return `score[head]`, the mean over the batch and over every query `i >= 1` of the attention
# from `i` to `i - 1`. (`tensor.diagonal(offset, dim1, dim2)` picks a diagonal out of the last two
# dimensions.) The check compares it with its own on both layers.
#
# Solution: `lessons/solutions/02_induction_heads.py` (in a cell: `%load solutions/02_induction_heads.py`).

# %%
def prev_token_score(pattern):
    """score[head]: mean attention from each position to the previous one."""
    raise NotImplementedError  # your code here


check_prev_token_score(prev_token_score, model)

# %% [markdown]
# ### Exercise 2.2: the induction score
#
# Write `induction_score(pattern, half_len)`: `pattern[batch, head, query, key]` of one layer on sequences
# `<|bos|> x x` where `x` has `half_len` random tokens (so the first copy starts at position 1 and the
# second at `1 + half_len`). Return `score[head]`: the mean, over the batch and over every query `i` of
# the second copy, of the attention from `i` to `i - half_len + 1`. The check tries two lengths.
#
# Solution: `lessons/solutions/02_induction_heads.py`.

# %%
def induction_score(pattern, half_len):
    """score[head]: mean attention from the second copy to the token after each token's first occurrence."""
    raise NotImplementedError  # your code here


check_induction_score(induction_score, model)

# %% [markdown]
# ### Exercise 2.3: name the heads
#
# From the score tables above: which head has the highest previous-token score (one `(layer, head)` pair),
# and which heads are induction heads (every head with an induction score above 0.4; a list of pairs)?
#
# Solution: `lessons/solutions/02_induction_heads.py`.

# %%
prev_token_head = ...  # (layer, head)
induction_heads = ...  # [(layer, head), ...]

check_heads(prev_token_head, induction_heads, model)

# %% [markdown]
# ### Exercise 2.4: predict before you measure
#
# Next we silence one head at a time (**zero-ablation**: its output becomes zero) and measure the loss
# on the second copy of repeated random sequences of `T_ex` tokens, twice. Which single head, silenced,
# will raise that loss the most? Answer with a `(layer, head)` pair *before* you run the next section.
#
# `T_ex` is 16, the length the next section measures, unless your instructor gave you a student id
# (`kit.lessons.start(student="...")`, or `$KIT_STUDENT`): then it is another length drawn for you, and
# the table below is not yours. Measure yours afterwards with `ablation_table(model,
# repeated_ids(model, n_seqs=32, half_len=T_ex), T_ex)`.
#
# Solution: `lessons/solutions/02_induction_heads.py`.

# %%
T_ex = exercise_half_len(model)  # your segment length: 16 without a student id
biggest_ablation = ...  # (layer, head)

check_ablation_prediction(biggest_ablation, model, half_len=T_ex)

# %% [markdown]
# ## Ablation: what breaks the second copy?
#
# `copy_losses` traces 32 sequences `<|bos|> x x` (16 random tokens, twice) and returns the mean loss
# on the first copy, which nothing can predict (about `ln 61 ≈ 4.1` nats or worse), and on the second,
# which induction can. `kit.Ablate(layer, head)` silences a head for one forward pass.

# %%
ids32 = repeated_ids(model, n_seqs=32, half_len=T, seed=0)  # [32, 1 + 2T]
clean = copy_losses(model, ids32, T)
ablated = {
    f"L{l}H{h}": copy_losses(model, ids32, T, [kit.Ablate(l, h)])["second"]
    for l in range(model.n_layers) for h in range(model.n_heads)
}
all_layer1 = copy_losses(model, ids32, T, [kit.Ablate(1, list(range(model.n_heads)))])["second"]
bars({"clean": clean["second"], **ablated, "all of layer 1": all_layer1}, title="loss on the second copy (nats)",
     value="loss")

# %%
# NBVAL_CHECK_OUTPUT
print(f"clean: first copy {clean['first']:.2f}, second copy {clean['second']:.2f} nats")
for name, loss in ablated.items():
    print(f"ablate {name}: second copy {loss:.2f}")
print(f"ablate all of layer 1: second copy {all_layer1:.2f}")
prev_head = int(prev[0].argmax())  # the previous-token head of layer 0, read from the scores
layer1 = [ablated[f"L1H{h}"] for h in range(model.n_heads)]
print(f"the previous-token head: L0H{prev_head}; the only head of layer 0 above 0.5:",
      bool((prev[0] > 0.5).sum() == 1))
print("no single head of layer 1 brings the second copy back near the first copy's loss:",
      max(layer1) < 0.5 * clean["first"])
print("the previous-token head alone does:", ablated[f"L0H{prev_head}"] > 0.75 * clean["first"])
print("all of layer 1 together does:", all_layer1 > 0.75 * clean["first"])

# %% [markdown]
# The two layers differ. Layer 1 is redundant: four induction heads back each other up, so silencing
# one raises the loss only a little. Layer 0 has a single previous-token head, and nothing backs it up:
# silence it and *every* induction head loses what it looks for. (The next-best head of layer 0, with a
# previous-token score near 0.26, helps: silencing it costs about 1.4 nats at 16 tokens, but the
# induction heads keep working.) We can see that directly: ablate heads of layer 0 and measure the
# induction scores of layer 1 again (from the patterns of the ablated forward pass).

# %%
# NBVAL_CHECK_OUTPUT
ids8 = repeated_ids(model, n_seqs=8, half_len=T, seed=1)
others = [h for h in range(model.n_heads) if h != prev_head]  # the other heads of layer 0
layer1_scores = {}
for label, interventions in [("clean", []), (f"L0H{prev_head} ablated", [kit.Ablate(0, prev_head)]),
                             ("the other 3 of layer 0 ablated", [kit.Ablate(0, others)])]:
    pattern = model.trace(ids8, capture=["pattern"], interventions=interventions)["pattern", 1]
    layer1_scores[label] = induction_score_of(pattern, T)  # [head]
    print(f"{label:>30}: layer-1 induction scores", [round(float(s), 2) for s in layer1_scores[label]])
print("without the previous-token head, every layer-1 head scores below 0.2:",
      bool((layer1_scores[f"L0H{prev_head} ablated"] < 0.2).all()))
print(f"without the other three heads of layer 0, every one stays above {INDUCTION_THRESHOLD}:",
      bool((layer1_scores["the other 3 of layer 0 ablated"] > INDUCTION_THRESHOLD).all()))

# %% [markdown]
# ## K-composition: the circuit in the weights
#
# How does an induction head find "the token after the earlier `A`"? Its **query** at the second `A`
# says "I am `A`"; the **keys** it compares against must say "the token before me was `A`". That is what
# the previous-token head wrote into each position's residual stream. So the induction heads' keys read
# the previous-token head's output: **K-composition** (Elhage et al. 2021).
#
# `composition_scores(model, kind)` measures it from the weights alone:
# `‖W_OV¹ · W_QK²‖ / (‖W_OV¹‖ ‖W_QK²‖)` for a head 1 of layer 0 writing and a head 2 of layer 1 reading
# through its keys (`"k"`), queries (`"q"`) or values (`"v"`). Random weights give about 0.12 at this
# size; we compute that baseline on the untrained model of the same recipe.

# %%
comp = {kind: composition_scores(model, kind)[0, :, 1, :] for kind in "qkv"}  # [head in layer 0, head in layer 1]
untrained = kit.Model(build_induction_model(InductionRecipe()), tokenizer, name="induction-2l, untrained")
baseline = composition_scores(untrained, "k")[0, :, 1, :]
(head_heatmap(comp["k"], "K-composition: layer-0 head (rows) -> layer-1 head (columns)")
 | head_heatmap(baseline, "K-composition before training"))

# %%
# NBVAL_CHECK_OUTPUT
for kind in "qkv":
    print(f"{kind.upper()}-composition of L0H{prev_head} into layer 1:",
          [round(float(s), 2) for s in comp[kind][prev_head]])
print("untrained model, largest K-composition:", round(float(baseline.max()), 2))
print("the previous-token head has the largest K-composition into every layer-1 head:",
      bool((comp["k"].argmax(0) == prev_head).all()))
print("it is above the untrained baseline for each:", bool((comp["k"][prev_head] > baseline.max()).all()))
print(f"L0H{prev_head} composes through keys more than through queries or values:",
      bool((comp["k"][prev_head] > comp["q"][prev_head]).all() and (comp["k"][prev_head] > comp["v"][prev_head]).all()))

# %% [markdown]
# ## Summary
#
# - Training on text with repeats, a 2-layer model forms an induction circuit abruptly: in the log, the
#   induction score crosses 0.5 within a few dozen steps of the steepest fall of the loss on repeated
#   tokens, after a previous-token head has slowly formed. A 1-layer model cannot.
# - The circuit: a **previous-token head** (L0H0) writes "the token before me" into every position; the
#   **induction heads** of layer 1 read it through their keys (K-composition), attend to the token after
#   the earlier occurrence, and copy it.
# - Ablation tells the parts apart: heads that share a job back each other up (four induction heads); a
#   job done by one head has no backup, so silencing the previous-token head, like silencing all of
#   layer 1, breaks the second copy.
#
# **Next**: `03_factual_recall.ipynb`: how `facts-4l` moves a subject's information to the last
# position and turns it into an answer.

# %% [markdown]
# ## Optional: the same on GPT-2 small and Pythia-160M (needs internet)
#
# The lesson's steps on two real models of the same size: score every head for previous-token and
# induction behaviour on random tokens repeated twice, ablate the induction heads and watch the loss on
# the second copy, and look for K-composition in the weights. (A real model cannot be trained live here;
# the phase change is the one step left out.)
#
# What is published to compare with:
# - Induction heads and their K-composition with previous-token heads: Elhage et al. (2021, *A
#   Mathematical Framework for Transformer Circuits*) and Olsson et al. (2022, *In-context Learning and
#   Induction Heads*).
# - **GPT-2 small**: the TransformerLens demonstrations and the ARENA exercises (chapter 1.2, *Intro to
#   mechanistic interpretability*), which score heads the way this lesson does, name the induction heads
#   **5.1, 5.5, 6.9, 7.2 and 7.10** (layer.head). Wang et al. (2022, *Interpretability in the Wild*) use
#   5.5 and 6.9 as induction heads and 2.2 and 4.11 as previous-token heads in their IOI circuit.
# - **Pythia-160M**: Biderman et al. (2023) release the Pythia models with their training checkpoints,
#   and later work follows induction heads through them (e.g. Tigges et al. 2024, *LLM Circuit Analyses
#   Are Consistent Across Training and Scale*). We cite no head indices for Pythia-160M: the scores
#   below are your measurement (to check against that work).
#
# The first cell loads both models (about 500 MB and 300 MB, once). Offline it prints one "Skipped" line
# and the cells after it do nothing.

# %%
# NBVAL_SKIP
from kit.analysis import composition_baseline, repeated_tokens
from kit.analysis import induction_scores as any_induction_scores
from kit.analysis import prev_token_scores as any_prev_token_scores
from kit.lessons.real import label, real_models

real = real_models()  # {hub id: model} for GPT-2 small and Pythia-160M: whatever could be loaded
PUBLISHED_INDUCTION = {"gpt2": [(5, 1), (5, 5), (6, 9), (7, 2), (7, 10)]}  # no published list for Pythia-160M here
g_T = 50  # length of the random segment that is repeated


def top_heads(scores, k):
    """The ``k`` highest-scoring heads of ``scores[layer, head]``, as (layer, head)."""
    return [(int(i) // scores.shape[1], int(i) % scores.shape[1]) for i in scores.flatten().topk(k).indices]


g_ind, g_prev = {}, {}
for name, m in real.items():
    g_ind[name] = any_induction_scores(m, seq_len=g_T, batch=8)  # [layer, head]
    g_prev[name] = any_prev_token_scores(m, batch=8)  # [layer, head]
    print(f"{label(name)}: top induction heads", [(f"{l}.{h}", round(float(g_ind[name][l, h]), 2))
                                                  for l, h in top_heads(g_ind[name], 5)])
    print("  top previous-token heads", [(f"{l}.{h}", round(float(g_prev[name][l, h]), 2))
                                         for l, h in top_heads(g_prev[name], 3)])
    print(f"  heads above {INDUCTION_THRESHOLD}:", [f"{l}.{h}" for l, h in (g_ind[name] > INDUCTION_THRESHOLD).nonzero().tolist()])
    if name in PUBLISHED_INDUCTION:
        print("  the published induction heads score:",
              {f"{l}.{h}": round(float(g_ind[name][l, h]), 2) for l, h in PUBLISHED_INDUCTION[name]})
alt.hconcat(*[head_heatmap(g_ind[name], f"{label(name)}: induction score") for name in real]) if real else None

# %%
# NBVAL_SKIP
def second_copy_loss(m, ids, interventions=()):
    """Mean loss (nats) on predicting the second copy's tokens (after its first) of ``ids[batch, pos]``."""
    logits = m.trace(ids, capture=[], interventions=interventions).logits.float()
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    start = ids.shape[1] - 2 * g_T  # 1 when a BOS comes first, else 0
    return float(loss[:, start + g_T:].mean())


def ablate(heads):
    return [kit.Ablate(l, [h for L, h in heads if L == l]) for l in sorted({l for l, _ in heads})]


for name, m in real.items():
    ids = repeated_tokens(m, seq_len=g_T, batch=8)  # [8, (BOS) + 2 x 50]
    mine = top_heads(g_ind[name], 5)
    control = top_heads(-g_ind[name][1:], 5)  # the 5 least induction-like heads above layer 0
    control = [(l + 1, h) for l, h in control]
    print(f"{label(name)}: second copy, clean {second_copy_loss(m, ids):.2f} nats; "
          f"its top-5 induction heads ablated {second_copy_loss(m, ids, ablate(mine)):.2f}; "
          f"5 other heads ablated {second_copy_loss(m, ids, ablate(control)):.2f}")
    if name in PUBLISHED_INDUCTION:
        print(f"  the published heads ablated: {second_copy_loss(m, ids, ablate(PUBLISHED_INDUCTION[name])):.2f}")

# %%
# NBVAL_SKIP
for name, m in real.items():  # K-composition: does the top previous-token head feed the induction heads' keys?
    k_comp = composition_scores(m, "k")  # [layer1, head1, layer2, head2]
    mean, std = composition_baseline(m, "k", samples=20)  # 20 random pairs: 200 would need 1 GB more on this size
    (pl, ph), = top_heads(g_prev[name], 1)
    into = [(f"{l}.{h}", round(float(k_comp[pl, ph, l, h]), 3)) for l, h in top_heads(g_ind[name], 5) if l > pl]
    print(f"{label(name)}: K-composition of previous-token head {pl}.{ph} into the top induction heads {into}; "
          f"random matrices {mean:.3f} ± {std:.3f}")
