# %% [markdown]
# # 03 · Factual recall: how a transformer looks up "the capital of X"
#
# A language model that completes "The capital of X is" with the right city has stored the fact
# somewhere. This lesson follows the three-step pipeline of *Interpreting Key Mechanisms of Factual
# Recall in Transformer-Based Language Models* (Lv et al., 2024) and the causal tracing of ROME
# (Meng et al., 2022) on a model small enough to look at in full.
#
# **Learning goals**
# - find the attention heads that carry the subject to the last position (attention weight and
#   direct effect), and measure whether an MLP amplifies or erases what they carry;
# - find the MLP whose output alone names the answer: an implicit `get_capital(X)`;
# - measure the final layer's direct effect on the correct answer (the paper's
#   "anti-overconfidence" question) and state its sign;
# - run causal tracing (residual, MLP, attention) and attention knockout, and read where the
#   subject's information lives and when it moves.
#
# **Prerequisites**: lesson 01 (the residual stream, attention patterns, direct logit attribution);
# softmax probabilities and a dot product.
#
# **Model**: `facts-4l`, a 4-layer GPT-2 trained by the kit on the facts of an invented world
# (countries, capitals, languages, currencies, people). It answers prompts it never saw in that
# wording; its model card (`kit/zoo/facts-4l/MODEL_CARD.md`) lists what it knows. Every figure in
# this lesson is computed in the cells below: the prose tells you how to read it, the cells print it.

# %%
import torch

import kit
from kit import charts
from kit.analysis import attention_knockout, causal_trace, recall_summary, subject_positions
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

# %% [markdown]
# The residual lens shows, layer by layer, what the last position would predict if the model stopped
# there, and which components write the answer (the waterfall at the bottom):

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
# ## Step 1: attention heads carry the subject to the last position
#
# The answer is predicted at the last position, but the subject sits earlier. Some head must copy
# it over. For each head we measure two things, averaged over the facts: how much of its attention
# the last token puts on the subject's tokens (summed over them), and its direct effect on the
# answer's logit (its output at the last position through the final norm and the unembedding).

# %%
summary = recall_summary(model, [f.text for f in facts], [f.subject for f in facts], [f.answer for f in facts])
charts.head_heatmap(summary.subject_attention, "attention from the last token to the subject") | \
    charts.head_heatmap(summary.head_effect, "direct effect on the answer's logit", scheme="redblue")

# %%
# NBVAL_CHECK_OUTPUT
print(f"mean p(answer) over {summary.n_prompts} facts: {summary.answer_prob:.2f}")
for layer, head, weight in summary.top_subject_heads(4):
    print(f"L{layer}H{head}: attention to the subject {weight:.2f}, "
          f"direct effect on the answer {float(summary.head_effect[layer, head]):+.2f}")

# %% [markdown]
# Look at these heads on our prompt: click a head, then the last token, and see where it looks.

# %%
AttentionViewer(model.trace(prompt, capture=["pattern"]))

# %% [markdown]
# ## Exercise 2: which head moves the subject?
#
# Using `model.trace(...)` and `tr["pattern", layer]` (`[batch, head, query, key]`), find the head
# whose attention from the last token to the subject (summed over the subject's tokens) is highest
# on average over `facts`. Give it as `(layer, head)`. (Careful with padding in a batch: each
# prompt's last token is at `tr.lengths[b] - 1`.)

# %%
answer_2 = ...  # (layer, head)

lesson.check_mover_head(answer_2, model, facts)

# %% [markdown]
# ## Step 2: an MLP amplifies or erases what a head carries
#
# Heads add their outputs to the residual stream with equal weight. The paper finds that an MLP
# after them acts like an activation function: it boosts some heads' contributions and cancels
# others, so that the subject stands out. We test this causally: zero-ablate one head at the last
# position and see how much of each MLP's direct effect on the answer disappears with it (read
# through the final norm frozen at the clean run, so only the MLP's own change counts). A response of
# the same sign as the head's own direct effect means the MLP **amplifies** the head; the opposite
# sign means it **erases** it. An MLP before the head's layer cannot respond (it runs earlier).

# %%
heads = [(l, h) for l, h, _ in summary.top_subject_heads(4)]
response = lesson.mlp_response_to_heads(model, facts, heads)

# %%
# NBVAL_CHECK_OUTPUT
for (l, h), row in zip(heads, response):
    direct = float(summary.head_effect[l, h])
    parts = []
    for m in range(l, model.n_layers):
        r = float(row[m])
        verdict = "amplifies" if r * direct > 0 else "erases"
        parts.append(f"MLP{m} {r:+.2f} ({verdict})" if abs(r) >= 0.05 else f"MLP{m} {r:+.2f}")
    print(f"L{l}H{h} (direct {direct:+.2f}): " + ", ".join(parts))

# %% [markdown]
# A response smaller than 0.05 in size is left unlabelled: that MLP barely reacts to that head.
# Compare the responses with the MLPs' total direct effects printed below: when each single head's
# share is small, several heads carry the subject side by side, and no one head is indispensable.
#
# ## Step 3: a deeper MLP writes the answer, an implicit `get_capital(X)`
#
# If an MLP "looks up" the answer, its output at the last position alone, read through the
# unembedding, should name the right answer among all the answers of that relation, for every
# subject. `lesson.mlp_answer_readout` measures exactly that: the share of subjects for which MLP
# `m`'s output ranks the right answer first among the relation's possible answers. Chance is one
# over the number of possible answers.

# %%
relations = sorted({f.relation for f in facts})
readout = lesson.mlp_answer_readout(model, world, relations)
print("MLP direct effect on the answer's logit, by layer:", [round(float(x), 2) for x in summary.mlp_effect])

# %%
# NBVAL_CHECK_OUTPUT
for rel, acc in readout.items():
    chance = 1 / len(world.answers(rel))
    print(f"{rel:>10}: accuracy by MLP layer {[round(float(a), 2) for a in acc]}   (chance {chance:.2f})")
mean_acc = torch.stack(list(readout.values())).mean(0)
best = int(mean_acc.argmax())
print(f"the MLP that best names the answer on its own: layer {best} of {model.n_layers} "
      f"(mean accuracy {float(mean_acc[best]):.2f})")

# %% [markdown]
# ## The final layer: anti-overconfidence?
#
# Lv et al. report that the final layer of every model they studied *suppresses* the correct answer
# (a negative direct effect on its logit), as if guarding against overconfidence. We measure the final
# block's direct effect (its heads, attention bias and MLP) on the correct answer's logit, averaged
# over the facts, and state its sign.

# %%
# NBVAL_CHECK_OUTPUT
final = summary.final_block_effect
sign = "negative" if final < 0 else "positive"
print(f"final block's direct effect on the correct answer's logit: {final:+.2f} ({sign})")
print("anti-overconfidence in this model:", final < 0)

# %%
if final < 0:
    print("The final block pushes the correct answer down, like the anti-overconfidence mechanism of Lv et al.")
else:
    print("The final block pushes the correct answer up: this small model shows no anti-overconfidence.")

# %% [markdown]
# ## Causal tracing (Meng et al., 2022)
#
# Corrupt the subject: add Gaussian noise of 3 times the embedding standard deviation to its token
# embeddings, so the model no longer knows who we ask about, and p(answer) collapses. Then, one
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
for kind, t in traces.items():
    layer, pos = t.peak()
    print(f"{kind:>5}: largest restored p(answer) {float(t.scores.max()):.2f} at layer {layer}, "
          f"position {pos} {t.tokens[pos]!r}")

# %% [markdown]
# ## Exercise 3: where does the subject's information live?
#
# The residual trace peaks trivially at the last position in the last layer: restoring that state
# restores everything. The interesting cells are in the subject's columns. Among the subject's
# positions only, at which `(layer, position)` does restoring the residual stream bring back the most
# p(answer)? Use `traces["resid"]` (its `.scores[layer, pos]` and `.subject`).

# %%
answer_3 = ...  # (layer, position)

lesson.check_subject_peak(answer_3, model, prompt, subject, answer)

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
# found it in GPT-2 XL, here in the first layer (a 4-layer model has no "middle"). That is not a given
# for a small model. Trained on the template sentences alone, an earlier version of this model looked
# its facts up at an earlier subject token instead: the syllable at which an invented name becomes
# distinctive (later syllables are endings shared by many names). What moved the lookup was training
# text in which the token after a name has to predict the entity's attributes, as in the lists and
# tables of real text (`Fusuvaria Gregrostton Grailodese ...`); `docs/factual_recall_experiments.md` has the
# runs, and how much the outcome depends on the training seed. Either way, the residual grid shows
# the information leaving the subject and arriving at the last position in later layers, carried by
# the attention we found in step 1.
#
# ## Attention knockout
#
# A sharper test of step 1: block attention from the last token to the subject's tokens (the kit's
# `Knockout` intervention sets those attention scores to minus infinity before the softmax) and
# measure p(answer). First in every layer at once, then one layer at a time.

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

# %% [markdown]
# ## Exercise 4: the knockout drop, by hand
#
# For our one prompt, block the last token's attention to the subject in every layer with
# `kit.Knockout(layer=list(range(model.n_layers)), query=-1, key=subj)` passed to
# `model.trace(prompt, interventions=[...])`, and give the drop in p(answer): p before minus p after.

# %%
answer_4 = ...  # a float: p(answer) before minus after

lesson.check_knockout_drop(answer_4, model, prompt, subject, answer)

# %% [markdown]
# ## Optional: the same on GPT-2 (needs internet)
#
# These cells download GPT-2 small from the Hugging Face hub (about 500 MB) and are skipped when the
# notebook is tested. The prompt is ROME's; the subject has several tokens.

# %%
# NBVAL_SKIP
gpt2 = kit.load("gpt2")
g_prompt, g_subject, g_answer = "The Space Needle is located in the city of", "The Space Needle", " Seattle"
g_traces = {kind: causal_trace(gpt2, g_prompt, g_subject, answer=g_answer, kind=kind, samples=10)
            for kind in ("resid", "mlp", "attn")}
PatchingHeatmap(g_traces, title="GPT-2 small: causal tracing")

# %%
# NBVAL_SKIP
g_prompts = ["The Space Needle is located in the city of", "The Eiffel Tower is located in the city of",
             "The Colosseum is located in the city of"]
g_subjects = ["The Space Needle", "The Eiffel Tower", "The Colosseum"]
g_answers = [" Seattle", " Paris", " Rome"]
g_summary = recall_summary(gpt2, g_prompts, g_subjects, g_answers)
print(g_summary)
for layer, head, weight in g_summary.top_subject_heads(5):
    print(f"L{layer}H{head}: attention to the subject {weight:.2f}, direct effect "
          f"{float(g_summary.head_effect[layer, head]):+.2f}")
print("GPT-2's final block's direct effect on the answer:", round(g_summary.final_block_effect, 2))

# %% [markdown]
# ## Summary
#
# - A few heads look from the last token at the subject and carry it over (their attention and
#   direct effect, step 1); blocking that attention at least halves p(answer).
# - MLPs respond to what single heads carry; the verdicts printed in step 2 say which amplify and
#   which erase it.
# - One MLP's output, read alone through the unembedding, names the right answer far more often
#   than chance: an implicit `get_capital(X)` (step 3).
# - The final block's direct effect on the correct answer has the sign printed above: negative would be
#   the paper's anti-overconfidence.
# - Causal tracing locates where restoring a state restores the answer: inside the subject early,
#   at the last token late.
#
# **Next**: `04_mlp_decomposition.ipynb` opens the MLPs: single neurons, what they write, why they are
# hard to read, and features found by SNMF.
