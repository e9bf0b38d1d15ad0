# %% [markdown]
# # 03 · Factual recall: how a transformer looks up "the capital of X"
#
# A language model that completes "The capital of X is" with the right city has stored the fact
# somewhere. Two accounts of how it is retrieved, and the tools they were found with:
#
# - **Lv et al. (2024)**, *Interpreting Key Mechanisms of Factual Recall in Transformer-Based Language
#   Models*: a pipeline. (1) Attention heads **move the subject** to the last position; (2) an MLP
#   acts like an activation function on the heads' summed outputs, **amplifying or erasing** single
#   heads' contributions so that the subject stands out; (3) a deeper MLP reads the subject and
#   **writes the answer**, like an implicit `get_capital(X)`. They also report a final-layer
#   **anti-overconfidence** mechanism that pushes the correct answer down.
# - **Geva et al. (2023)**, *Dissecting Recall of Factual Associations in Auto-Regressive Language
#   Models*: early MLPs **enrich** the subject's last token with many of its attributes; the relation
#   reaches the last position; attention heads there **extract** the asked attribute from the enriched
#   subject and write it almost directly to the output. Their tool: **attention knockout**.
# - **Meng et al. (2022)**, *Locating and Editing Factual Associations in GPT* (ROME): **causal
#   tracing**, which located MLP effects at the subject's last token in GPT-2 XL.
#
# The accounts overlap but differ on who writes the answer: a mover head plus a look-up MLP, or an
# extractor head reading a subject that an early MLP has already enriched. This lesson measures, on
# a model small enough to look at in full, which steps of each account it has and which it lacks.
#
# **Learning goals**
# - measure effects on a **logit difference** (the answer against the other answers of its relation),
#   and say which ablation each measurement uses and why;
# - find the heads that attend from the last token to the subject, and test whether the top one
#   only moves the subject or already extracts the answer;
# - measure whether MLPs amplify or erase what a head writes, against a noise floor;
# - measure the final layer's effect on the correct answer four ways, and state each result;
# - run causal tracing (residual, MLP, attention) and attention knockout, and read where the
#   subject's information lives and when it moves.
#
# **Prerequisites**: lesson 01 (the residual stream, attention patterns, direct logit attribution on
# a logit difference); softmax probabilities and a dot product.
#
# **Model**: `facts-4l`, a 4-layer GPT-2 trained by the kit on the facts of an invented world
# (countries, capitals, languages, currencies, people). It answers prompts it never saw in that
# wording; its model card (`kit/zoo/facts-4l/MODEL_CARD.md`) lists what it knows. Every figure in
# this lesson is computed in the cells below: the prose tells you how to read it, the cells print it.

# %%
import torch

import kit
from kit import charts
from kit.analysis import (
    attention_knockout, causal_trace, contrast_attribution, final_block_measures, recall_summary, subject_positions,
)
from kit.lessons import factual as lesson
from kit.train import load_world
from kit.widgets import AttentionViewer, PatchingHeatmap, ResidualLens

torch.manual_seed(0)
torch.set_num_threads(1)  # the model is tiny: one thread is fastest, above all on a busy, shared CPU
model = kit.load("facts-4l", device="cpu")
world = load_world()  # the invented world that facts-4l has memorised
world

# %% [markdown]
# ## One fact
#
# `lesson.lesson_facts` picks facts that the model answers right (top-1 on the answer's first
# token), in each relation's first template, round-robin over the relations. We follow the first one
# closely and use all of them for averages.

# %%
facts = lesson.lesson_facts(model, world, n=24)
fact = facts[0]
prompt, subject, answer = fact.text, fact.subject, fact.answer
tr = model.trace(prompt)
probs = tr.logits[0, -1].softmax(-1)
print(f"{len(facts)} facts, relations: {sorted({f.relation for f in facts})}")
print(f"{prompt!r} -> {answer!r}   subject: {subject!r}")
print("tokens:", tr.tokens[0])
print(f"p({answer!r}) = {float(probs[lesson.first_token(model, answer)]):.2f}")
others = lesson.competitors(model, world, facts)  # per fact: the other answers of its relation (token ids)
print(f"{fact.relation} has {len(others[0]) + 1} possible answers; we measure {answer!r} against the other {len(others[0])}")

# %% [markdown]
# The residual lens shows, layer by layer, what the last position would predict if the model stopped
# there. (Its waterfall at the bottom attributes the *raw* logit; every effect measured below is on
# the logit difference against the relation's other answers, as lesson 01 explained.)

# %%
ResidualLens(tr, target=answer)

# %% [markdown]
# ## Exercise 1: the subject's tokens
#
# Every method in this lesson needs the subject's token positions. Invented names are split into
# several tokens, and the tokenizer puts `<|bos|>` at position 0. Write `subject_tokens(prompt,
# subject)` returning the positions (as `model.to_str_tokens(prompt)` numbers them) of every token
# that overlaps the subject. Hint: `model.tokenizer(prompt, return_offsets_mapping=True)` gives each
# token's character span.
#
# The solution is in `lessons/solutions/03_factual_recall.py` (`%load solutions/03_factual_recall.py`).

# %%
def subject_tokens(prompt: str, subject: str) -> list[int]:
    raise NotImplementedError  # your code here


lesson.check_subject_tokens(subject_tokens, model, world)

# %% [markdown]
# From here on the lesson uses the kit's own `subject_positions`.

# %%
subj = subject_positions(model, prompt, subject)
print("subject positions:", subj, [tr.tokens[0][i] for i in subj])

# %% [markdown]
# ## Step 1: which heads look at the subject?
#
# The answer is predicted at the last position, but the subject sits earlier: attention must bring
# something over. For each head we measure how much of its attention the last token puts on the
# subject's tokens (summed over them), averaged over the facts.
#
# ## Exercise 2: which head attends most to the subject?
#
# Using `model.trace(...)` and `tr["pattern", layer]` (`[batch, head, query, key]`), find the head
# whose attention from the last token to the subject (summed over the subject's tokens) is highest
# on average over `facts_2`. Write it as `"L<layer>H<head>"` (e.g. `"L2H0"`). (Careful with padding in
# a batch: each prompt's last token is at `tr.lengths[b] - 1`.)
#
# `facts_2` are all the lesson's `facts`, or, if your instructor gave you a student id
# (`kit.lessons.start(student="...")` in the first cell, or `$KIT_STUDENT`), 12 of them drawn for you.
# The same goes for the fact of exercises 3 and 4.

# %%
facts_2 = lesson.exercise_facts(model, facts)  # yours: all of `facts` without a student id
answer_2 = ...  # a head, e.g. "L2H0"

lesson.check_mover_head(answer_2, model, facts_2)

# %% [markdown]
# The measured attention, and each head's direct effect on the logit difference between the answer
# and the relation's other answers (mean over the facts):

# %%
summary = recall_summary(model, [f.text for f in facts], [f.subject for f in facts], [f.answer for f in facts])
diff = contrast_attribution(model.trace([f.text for f in facts]), [f.answer for f in facts], others)
head_diff = diff.heads.mean(0)  # [layer, head]
charts.head_heatmap(summary.subject_attention, "attention from the last token to the subject") | \
    charts.head_heatmap(head_diff, "direct effect on the logit difference", scheme="redblue")

# %%
# NBVAL_CHECK_OUTPUT
print(f"mean p(answer) over {summary.n_prompts} facts: {summary.answer_prob:.2f}")
for layer, head, weight in summary.top_subject_heads(4):
    print(f"L{layer}H{head}: attention to the subject {weight:.2f}, "
          f"direct effect on the logit difference {float(head_diff[layer, head]):+.2f}")
top_layer, top_head, _ = summary.top_subject_heads(1)[0]

# %% [markdown]
# Look at these heads on our prompt: click a head, then the last token, and see where it looks.

# %%
AttentionViewer(model.trace(prompt, capture=["pattern"]))

# %% [markdown]
# ### Mover or extractor?
#
# In Lv et al.'s pipeline the top head *moves* the subject, and a later MLP turns the subject into the
# answer. In Geva et al.'s account it *extracts* the attribute from a subject that an early MLP has
# already enriched. The two make different predictions about the head's own output at the last
# position, read alone through the unembedding: a mover writes "which country", which need not rank
# the right capital above the others; an extractor's output already names the answer. And an
# extractor needs an enriched subject: the residual stream at the subject's **last token** should
# name the subject's attributes after the first MLP, not before it.

# %%
# NBVAL_CHECK_OUTPUT
readout = lesson.head_readout(model, world, facts, top_layer, top_head)
ranks = torch.tensor(readout["answer"])
n_answers = sum(len(world.answers(r)) for r in (f.relation for f in facts)) / len(facts)
print(f"L{top_layer}H{top_head}'s own output ranks the fact's answer among its relation's answers: "
      f"median rank {int(ranks.median()) + 1}, first for {float((ranks == 0).float().mean()):.0%} of the facts "
      f"(chance {1 / n_answers:.0%})")
for attr in ("capital", "language", "currency", "continent"):
    r = torch.tensor(readout[attr])
    print(f"  for country subjects, whatever the prompt asks: the subject's {attr} first among all "
          f"{len(world.answers(attr))} {attr} answers for {float((r == 0).float().mean()):.0%}")
enrich = lesson.subject_enrichment(model, world, facts)
print("the subject's last token names the fact's answer first among its relation's answers:")
for stage, share in enrich.items():
    print(f"  {stage}: {share:.0%}")

# %% [markdown]
# Read it as Geva et al. would. The top head's own output already ranks the answer first for most
# facts, so it is not only moving the subject: it extracts. It is not even specific to the question:
# on a prompt about a country's capital it promotes that country's language and currency as well
# (continent, with 5 possible answers and many shared, less so). Which attribute wins at the output
# must then be settled by what carries the relation (lesson 04 finds a relation feature in MLP0 at the
# last prompt token, and steers the model with it). And the subject's last token names the
# answer far more often after the first MLP than before it: MLP0 enriches the subject with its
# attributes, which the head then reads. `facts-4l` follows the extraction account.
#
# ## Step 2: does an MLP amplify or erase what a head writes?
#
# Lv et al.'s step 2 says an MLP amplifies some heads' contributions and erases others', so that the
# subject stands out. We measure that sentence directly. **Mean-ablate** one head at the last
# position (replace its output by its mean over the facts: the prompt-specific part `d` of what it
# wrote is removed, its average stays, so downstream layers see an input of the usual size; zero
# ablation would also remove that constant part, a change the model never saw in training). Then
# measure how much MLP `m`'s output at the last position loses **along `d`**: `k = <Δmlp_out, d> /
# |d|²`. `k = +0.1` means the MLP adds 10 % more of what the head wrote (it amplifies it); `k = -0.1`
# means it cancels 10 % of it (it erases it).
#
# An MLP responds to *any* change of its input, so we need a **noise floor**: remove instead a random
# direction of the same size from that layer's attention output (8 draws) and take the largest `|k|`.
# Only a response beyond the floor is specific to the head.

# %%
heads = [(l, h) for l, h, _ in summary.top_subject_heads(4)]
k, floor = lesson.mlp_amplification(model, facts, heads, seeds=8)

# %%
# NBVAL_CHECK_OUTPUT
for (l, h), row, fl in zip(heads, k, floor):
    parts = []
    for m in range(l, model.n_layers):
        verdict = "amplifies" if row[m] > fl[m] else "erases" if row[m] < -fl[m] else "within noise"
        parts.append(f"MLP{m} {float(row[m]):+.3f} (floor {float(fl[m]):.3f}: {verdict})")
    print(f"L{l}H{h}: " + ", ".join(parts))
print(f"largest response of any MLP to any of these heads: {float(k.nan_to_num(0).abs().max()):.2f} of the head's own output")

# %% [markdown]
# Some responses are beyond the floor, so they are real, but all are small: no MLP adds or removes
# more than about a tenth of what a subject head wrote. In `facts-4l`, MLPs do not gate heads in the
# way step 2 describes; the subject heads' outputs reach the unembedding mostly as they were written.
#
# ## Step 3: does a deeper MLP write the answer, an implicit `get_capital(X)`?
#
# If an MLP "looks up" the answer, its output at the last position alone, read through the
# unembedding, should name the right answer among all the answers of that relation, for every
# subject. `lesson.mlp_answer_readout` measures exactly that: the share of subjects for which MLP
# `m`'s output ranks the right answer first among the relation's possible answers. Chance is one
# over the number of possible answers. Beside it, each MLP's direct effect on the logit difference.

# %%
relations = sorted({f.relation for f in facts})
mlp_readout = lesson.mlp_answer_readout(model, world, relations)

# %%
# NBVAL_CHECK_OUTPUT
print("MLP direct effect on the logit difference, by layer:", [round(float(x), 2) for x in diff.mlps.mean(0)])
for rel, acc in mlp_readout.items():
    chance = 1 / len(world.answers(rel))
    print(f"{rel:>10}: accuracy by MLP layer {[round(float(a), 2) for a in acc]}   (chance {chance:.2f})")
mean_acc = torch.stack(list(mlp_readout.values())).mean(0)
best = int(mean_acc.argmax())
print(f"the MLP that best names the answer on its own: layer {best} of {model.n_layers} "
      f"(mean accuracy {float(mean_acc[best]):.2f}); the head L{top_layer}H{top_head}: "
      f"{float((ranks == 0).float().mean()):.2f}")

# %% [markdown]
# The later MLPs do name the answer well above chance, and add to the logit difference: they
# sharpen an answer the extractor head has already written, rather than look it up from a subject
# that a head merely moved.

# %% [markdown]
# ## The final layer: anti-overconfidence?
#
# Lv et al. report that the final layer of every model they studied *suppresses* the correct answer,
# as if guarding against overconfidence. "Suppresses" can be measured in several ways, and they need
# not agree, so we measure four, over the facts, and state each:
#
# 1. the final block's direct effect on the answer's **raw logit** (heads, attention bias and MLP);
# 2. its direct effect on the **logit difference** against the relation's other answers;
# 3. the change in **log p(answer)** when the final block's direct contribution is removed from the
#    final residual stream (the final norm's scale frozen at the clean run, as in attribution);
# 4. the **logit lens**'s p(answer) before the final block (after layer 2) and after it.

# %%
# NBVAL_CHECK_OUTPUT
final = final_block_measures(model, [f.text for f in facts], [f.answer for f in facts], others)
for measure, value, suppresses in final.rows():
    print(f"{measure}: {value:+.3f} -> {'suppresses' if suppresses else 'promotes'} the correct answer")
print(f"logit-lens p(answer): {final.lens_before:.3f} before the final block, {final.lens_after:.3f} after it")
print("anti-overconfidence by any of the four measures:", any(sup for _, _, sup in final.rows()))

# %% [markdown]
# By all four measures the final block of `facts-4l` *promotes* the correct answer. That is what one
# would expect of a small model that memorised its world: every training prompt has exactly one right
# next token, so the cross-entropy loss rewards putting all the probability on it, and any mechanism
# that holds the correct answer back only raises the loss. A large model trained on real text faces
# next tokens that are genuinely uncertain (many continuations are plausible), where a confident
# mistake costs a lot; Lv et al. read their final-layer suppression as calibration against that. Our
# world has no such uncertainty, so the mechanism has nothing to do here. The optional GPT-2 cells at
# the end run the same four measures on GPT-2 small.
#
# ## Which steps does `facts-4l` have?
#
# | step | measured above | in `facts-4l` |
# | --- | --- | --- |
# | heads attend from the last token to the subject (Lv step 1) | attention to the subject | yes |
# | the subject's last token is enriched by an early MLP (Geva) | answer named at the subject, before/after MLP0 | yes |
# | a head at the last position extracts the attribute (Geva) | the head's own output names the answer | yes |
# | MLPs amplify or erase single heads (Lv step 2) | response along the head's output vs a noise floor | only weakly |
# | a deeper MLP writes the answer (Lv step 3) | MLP readout and logit difference | adds to it |
# | final-layer anti-overconfidence (Lv) | four measures | no |
#
# `tests/test_lesson03_claims.py` asserts each row on the shipped weights.

# %% [markdown]
# ## Causal tracing (Meng et al., 2022)
#
# Corrupt the subject: add Gaussian noise of 3 times the embedding standard deviation to its token
# embeddings, so the model no longer knows who we ask about, and p(answer) collapses. (This is ROME's
# own corruption and its own measure, p(answer): we keep both so that our figures compare with
# theirs. The corruption plays the role of the contrast here: the clean and corrupted runs differ
# only in which subject the model can read.) Then, one
# (layer, position) at a time, restore the clean hidden state there and see how much of p(answer)
# comes back. Three grids: the residual stream after each layer, each MLP's output, and each
# attention layer's output. The kit runs every cell of a grid in a few batched forward passes.

# %%
traces = {kind: causal_trace(model, prompt, subject, answer=answer, kind=kind, samples=10, seed=0)
          for kind in ("resid", "mlp", "attn")}
PatchingHeatmap(traces, title=f"causal tracing: {prompt!r} -> {answer!r}")

# %%
# NBVAL_CHECK_OUTPUT
ct = traces["resid"]
print(f"p(answer): clean {ct.clean:.2f}, subject corrupted {ct.corrupted:.2f}")
layer, pos = ct.peak()
print(f"resid: largest restored p(answer) {float(ct.scores.max()):.2f} at layer {layer}, position {pos} {ct.tokens[pos]!r}")

# %% [markdown]
# ## Exercise 3: where does the subject's information live?
#
# The residual trace peaks trivially at the last position in the last layer: restoring that state
# restores everything. The interesting cells are in the subject's columns. Among the subject's
# positions only, at which `(layer, position)` does restoring the residual stream bring back the most
# p(answer)? Use `ex_trace`, the residual trace of your fact `ex` (its `.scores[layer, pos]` and
# `.subject`); without a student id, `ex` is the fact above and `ex_trace` is `traces["resid"]`.

# %%
ex = lesson.exercise_fact(model, facts)  # yours: the lesson's fact without a student id
ex_trace = traces["resid"] if ex is fact else causal_trace(model, ex.text, ex.subject, answer=ex.answer,
                                                           kind="resid", samples=10, seed=0)
print(f"{ex.text!r} -> {ex.answer!r}   subject: {ex.subject!r}")
answer_3 = ...  # (layer, position)

lesson.check_subject_peak(answer_3, model, ex.text, ex.subject, ex.answer)

# %% [markdown]
# The MLP and attention grids peak here:

# %%
# NBVAL_CHECK_OUTPUT
for kind in ("mlp", "attn"):
    layer, pos = traces[kind].peak()
    print(f"{kind:>5}: largest restored p(answer) {float(traces[kind].scores.max()):.2f} at layer {layer}, "
          f"position {pos} {traces[kind].tokens[pos]!r}")

# %% [markdown]
# ## Causal tracing over many facts
#
# One prompt can mislead. ROME averages the effects over many facts by token role: the subject's
# first, middle and last tokens, the token after it, further tokens, and the last token. In GPT-2 XL
# it found MLP effects peaking at the **subject's last token** in the middle layers, and attention
# effects at the last token in late layers. What does our model do?

# %%
by_role = {kind: lesson.trace_by_role([causal_trace(model, f.text, f.subject, answer=f.answer, kind=kind,
                                                    samples=5, seed=0) for f in facts])
           for kind in ("resid", "mlp", "attn")}
present = [i for i, _ in enumerate(lesson.ROLES) if not torch.isnan(by_role["mlp"][0, i])]
charts.layer_pos_heatmap(by_role["mlp"][:, present], [lesson.ROLES[i] for i in present],
                         title="MLP causal effect, mean over facts", value="effect") | \
    charts.layer_pos_heatmap(by_role["attn"][:, present], [lesson.ROLES[i] for i in present],
                             title="attention causal effect, mean over facts", value="effect")

# %%
# NBVAL_CHECK_OUTPUT
for kind, grid in by_role.items():
    g = grid.nan_to_num(float("-inf"))
    i = int(g.argmax())
    layer, role = i // g.shape[1], lesson.ROLES[i % g.shape[1]]
    print(f"{kind:>5}: mean effect peaks at {float(g.max()):.2f}, layer {layer}, {role}")
mlp = by_role["mlp"].nan_to_num(float("-inf")).max(0).values  # best layer per role
subject_best = lesson.ROLES[int(mlp[:3].argmax())]
print("MLP effect larger inside the subject than at the last token:", bool(mlp[:3].max() > mlp[5]))
print("MLP effect peaks at the subject's last token, as in ROME:", subject_best == "last subject token")

# %% [markdown]
# Read the last two lines. In `facts-4l` the MLP effect peaks at the subject's last token, where ROME
# found it in GPT-2 XL, here in the first layer (a 4-layer model has no "middle"): the same MLP0 that
# enriches the subject in the extraction account above.
#
# **This peak depends on how the model was trained and on the seed; it is not what small models do by
# default.** Trained on the template sentences alone (seven redesigns, v0-v7), the model looked its
# facts up at an earlier subject token: the syllable at which an invented name becomes distinctive.
# What moved the lookup was training text in which the token after a name has to predict the
# entity's attributes, as in the lists and tables of real text (entity records: `Fusuvaria
# Gregrostton Grailodese ...`). Even then it holds only in some runs: over 46 trainings with records
# (`docs/factual_recall_experiments.md`), the subject's last token had the largest MLP effect in 7;
# with the shipped recipe on world seed 0, in 1 of 8 training seeds (seed 0: 0.343 at the subject's last token vs
# 0.183 at the best other earlier token and 0.116 at the last token; seed 1: 0.107 vs 0.308 and
# 0.188), and in 2 of 4 invented worlds (the shipped world seed 2: 0.422 vs 0.142 and 0.149). The
# shipped `facts-4l` is a run in which the ROME picture holds, chosen so that the lesson can show it.
# Either way, the residual grid shows the information leaving the subject and arriving at the last
# position in later layers, carried by the attention we found in step 1.
#
# ## Attention knockout
#
# Geva et al.'s test of the extraction step: block attention from the last token to the subject's
# tokens (the kit's `Knockout` intervention gives those attention scores the causal mask's large
# negative value before the softmax, so the last token spreads its attention over the other tokens) and
# measure p(answer), their measure. First in every layer at once, then one layer at a time: the
# layers whose knockout hurts are where the attribute is read from the subject.

# %%
keys = [subject_positions(model, f.text, f.subject) for f in facts]
texts, answers = [f.text for f in facts], [f.answer for f in facts]
ko_all = attention_knockout(model, texts, key=keys, answer=answers)
ko_layer = [attention_knockout(model, texts, key=keys, answer=answers, layers=[l]) for l in range(model.n_layers)]

# %%
# NBVAL_CHECK_OUTPUT
before = float(ko_all["before"].mean())
print(f"mean p(answer): {before:.2f}; with the last token blind to the subject in every layer: "
      f"{float(ko_all['after'].mean()):.2f}")
for l, ko in enumerate(ko_layer):
    print(f"  blocked in layer {l} only: {float(ko['after'].mean()):.2f}")
print("knockout in every layer at least halves p(answer):", float(ko_all["after"].mean()) <= before / 2)
worst = min(range(model.n_layers), key=lambda l: float(ko_layer[l]["after"].mean()))
print(f"the single layer whose knockout costs most: layer {worst}")

# %% [markdown]
# Blocking one layer at a time, layer 1 costs most: that is where L1H3 reads the enriched subject.
# Blocking every layer leaves the last token no way to read the subject at all.

# %% [markdown]
# ## Exercise 4: the knockout drop, by hand
#
# For your fact `ex` (the prompt we follow, without a student id), block the last token's attention to
# the subject in every layer with `kit.Knockout(layer=list(range(model.n_layers)), query=-1, key=...)`
# (the subject's positions) passed to `model.trace(ex.text, interventions=[...])`, and give the drop in
# p(answer): p before minus p after.

# %%
answer_4 = ...  # a float: p(answer) before minus after

lesson.check_knockout_drop(answer_4, model, ex.text, ex.subject, ex.answer)

# %% [markdown]
# ## Optional: the same on GPT-2 small and Pythia-160M (needs internet)
#
# The lesson's steps on two real models: causal tracing of one fact (residual, MLP and attention
# restored separately), the heads that look from the last token at the subject, attention knockout
# (in every layer, then layer by layer), and the final block's four measures. The facts are landmarks
# whose subjects have several tokens; the first is ROME's example.
#
# What is published to compare with:
# - **Causal tracing** (Meng et al. 2022, *Locating and Editing Factual Associations in GPT*, ROME): in
#   GPT-2 XL (and GPT-J) the MLP effect peaks at the **subject's last token** in the **early-to-middle
#   layers**, and the attention effect at the **last token** in later layers. On GPT-2 small and on
#   Pythia-160M, where the peaks fall is for you to read below (to check: we cite no figure for these
#   two models).
# - **Attention knockout and extraction** (Geva et al. 2023, *Dissecting Recall of Factual Associations
#   in Auto-Regressive Language Models*, on GPT-2 XL and GPT-J): blocking the last token's attention to
#   the subject in the middle-to-upper layers drops p(answer) sharply; blocking it in the first layers
#   barely matters.
# - **Final-layer anti-overconfidence** (Lv et al. 2024, *Interpreting Key Mechanisms of Factual Recall
#   in Transformer-Based Language Models*, GPT-2 and others): the final layer suppresses the correct
#   answer. The four measures below test that claim here, each on its own.
#
# The first cell loads both models (about 500 MB and 300 MB, once). Offline it prints one "Skipped" line
# and the cells after it do nothing.

# %%
# NBVAL_SKIP
from IPython.display import display  # noqa: E402

from kit.lessons.real import label, real_models  # noqa: E402

real = real_models()  # {hub id: model} for GPT-2 small and Pythia-160M: whatever could be loaded
g_facts = [("The Space Needle is located in the city of", "The Space Needle", " Seattle"),
           ("The Eiffel Tower is located in the city of", "The Eiffel Tower", " Paris"),
           ("The Colosseum is located in the city of", "The Colosseum", " Rome"),
           ("Big Ben is located in the city of", "Big Ben", " London"),
           ("The Brandenburg Gate is located in the city of", "The Brandenburg Gate", " Berlin")]
g_prompts, g_subjects, g_answers = (list(x) for x in zip(*g_facts))
g_traces = {}
for name, m in real.items():
    g_traces[name] = {kind: causal_trace(m, g_prompts[0], g_subjects[0], answer=g_answers[0], kind=kind, samples=10)
                      for kind in ("resid", "mlp", "attn")}
    subj_last = subject_positions(m, g_prompts[0], g_subjects[0])[-1]
    mlp = g_traces[name]["mlp"]
    peak = int(mlp.effect[:, subj_last].argmax())
    print(f"{label(name)}: p({g_answers[0]!r}) clean {mlp.clean:.3f}, subject corrupted {mlp.corrupted:.3f}; "
          f"MLP effect at the subject's last token peaks in layer {peak} of {m.n_layers} "
          f"({float(mlp.effect[peak, subj_last]):+.3f}); attention effect peak (layer, position) "
          f"{g_traces[name]['attn'].peak()}")
    display(PatchingHeatmap(g_traces[name], title=f"{label(name)}: causal tracing"))

# %%
# NBVAL_SKIP
for name, m in real.items():
    g_ids = [lesson.first_token(m, a) for a in g_answers]
    g_others = [[t for t in g_ids if t != mine] for mine in g_ids]  # each answer against the other cities
    summary = recall_summary(m, g_prompts, g_subjects, g_answers)
    print(f"{label(name)}: {summary}")
    for layer, head, weight in summary.top_subject_heads(3):
        print(f"  L{layer}H{head}: attention from the last token to the subject {weight:.2f}")
    keys = [subject_positions(m, p, s) for p, s in zip(g_prompts, g_subjects)]
    ko_all = attention_knockout(m, g_prompts, key=keys, answer=g_answers)
    ko_layer = [float(attention_knockout(m, g_prompts, key=keys, answer=g_answers, layers=[l])["after"].mean())
                for l in range(m.n_layers)]
    print(f"  knockout: mean p(answer) {float(ko_all['before'].mean()):.3f}, blind to the subject in every layer "
          f"{float(ko_all['after'].mean()):.3f}; one layer at a time {[round(p, 3) for p in ko_layer]}")
    final = final_block_measures(m, g_prompts, g_answers, g_others)
    for measure, value, suppresses in final.rows():
        print(f"  final block, {measure}: {value:+.3f} -> {'suppresses' if suppresses else 'promotes'} the answer")
    print(f"  logit-lens p(answer): {final.lens_before:.3f} before the final block, {final.lens_after:.3f} after it")

# %% [markdown]
# ## Summary
#
# - Effects are measured on the logit difference between the answer and the other answers of its
#   relation; causal tracing and knockout use their authors' measure, p(answer), with a corrupted or
#   blocked run as the contrast; ablations are mean ablations, so only what is specific to a prompt is
#   removed.
# - A few heads look from the last token at the subject. The top one, L1H3, is an **extractor** in
#   Geva et al.'s sense: its own output already ranks the answer first for most facts, and promotes
#   the subject's other attributes too; the subject's last token is enriched by MLP0 first.
#   Blocking the last token's attention to the subject collapses p(answer).
# - MLPs respond to single heads' outputs beyond a noise floor only weakly (about a tenth of the head's
#   output at most): no gating as in Lv et al.'s step 2. Later MLPs add to the logit difference.
# - The final block promotes the correct answer by all four measures: no anti-overconfidence in a
#   model that memorised a world without uncertainty.
# - Causal tracing finds the MLP effect at the subject's last token in layer 0, as ROME did in
#   GPT-2 XL, but only because of how this model was trained (entity records) and its seed.
#
# **Next**: `04_mlp_decomposition.ipynb` opens the MLPs: single neurons, what they write, why they are
# hard to read, and features found by SNMF.
