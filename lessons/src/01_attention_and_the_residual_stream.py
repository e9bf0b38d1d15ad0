# %% [markdown]
# # 01 · Attention and the residual stream
#
# A tour of what happens inside a transformer when it answers a question, and of the kit's views
# for looking at it.
#
# **Learning goals**
# - read a trace: the tokens, and the **residual stream** as a running sum that every block adds to
#   (`resid_post = resid_pre + attn_out + mlp_out`);
# - read an **attention pattern** `pattern[batch, head, query, key]`, in the `AttentionViewer` and as a tensor;
# - use the **logit lens** (`ResidualLens`, `kit.analysis.logit_lens`) to see after which layer a
#   prediction forms;
# - split a **logit difference** (the answer against its competitors) into the direct contributions of
#   the embeddings, every head and every MLP, which add up to it (direct logit attribution), and see
#   why attributing a raw logit misleads.
#
# **Prerequisites**: `00_quickstart.ipynb`; vectors, matrix products and the softmax.
#
# **Model**: `facts-4l`, a 4-layer GPT-2 (4 heads per layer, `d_model` 128) that the kit trained on the
# facts of an invented world (see `kit/zoo/facts-4l/MODEL_CARD.md`); a peek at `induction-2l` at the end.
# Everything runs offline on a CPU in seconds.

# %%
import torch

import kit
from kit.analysis import contrast_attribution, direct_logit_attribution, logit_lens
from kit.lessons.attention import (
    check_first_top1_layer, check_most_attended, check_residual_from_parts, check_top_component,
    exercise_person, relation_competitors,
)
from kit.train import load_world
from kit.widgets import AttentionViewer, CircuitDiagram, Dashboard, ResidualLens

torch.manual_seed(0)
torch.set_num_threads(1)  # tiny models: one thread is as fast, and the printed numbers repeat exactly

model = kit.load("facts-4l", device="cpu")
world = load_world()  # the invented world facts-4l has memorised
model

# %% [markdown]
# ## Tokens
#
# The model never sees words, only **tokens**: pieces of text from its vocabulary of 1280, each turned
# into a vector of `d_model = 128` numbers by the embedding. Invented names are split into several
# pieces. Position 0 is always `<|bos|>`, the beginning-of-sequence token the model was trained with.

# %%
# NBVAL_CHECK_OUTPUT
country = world.countries[0]
prompt = f"The capital of {country['name']} is"
answer = " " + country["capital"]  # answers start with a space, like GPT-2's tokens
tr = model.trace(prompt)  # one forward pass; everything is captured
print(f"{prompt!r} -> {answer!r}")
for pos, token in enumerate(tr.tokens[0]):
    print(pos, repr(token))

# %% [markdown]
# ## The residual stream is a sum
#
# Each block reads the **residual stream** `resid_pre[l]`, and adds to it what its attention layer
# computes (`attn_out[l]`) and what its MLP computes (`mlp_out[l]`):
#
# `resid_post[l] = resid_pre[l] + attn_out[l] + mlp_out[l]`, and `resid_pre[l + 1] = resid_post[l]`.
#
# Nothing is ever overwritten: the stream after the last layer is the embeddings (token plus position)
# plus everything every attention layer and every MLP wrote. The attention output is itself a sum of
# one output per head (`head_out[batch, pos, head, d_model]`) plus a bias. The tracer captured every
# piece, so we can check these identities on the real forward pass:

# %%
# NBVAL_CHECK_OUTPUT
def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool((a - b).abs().max() < 1e-4)


b_O = [model.adapter.b_O(l) for l in range(model.n_layers)]  # the output bias of each attention layer
for l in range(model.n_layers):
    print(
        f"layer {l}:",
        "resid_post == resid_pre + attn_out + mlp_out:", close(tr["resid_post", l], tr["resid_pre", l] + tr["attn_out", l] + tr["mlp_out", l]),
        "| attn_out == sum of heads + bias:", close(tr["attn_out", l], tr["head_out", l].sum(2) + b_O[l]),
    )
print("resid_pre[l + 1] == resid_post[l]:", all(close(tr["resid_pre", l + 1], tr["resid_post", l]) for l in range(model.n_layers - 1)))
print("logits == unembed(resid_post[last]):", close(model.unembed(tr["resid_post", model.n_layers - 1]), tr.logits))

# %% [markdown]
# ### Exercise 1.1: the residual stream from its parts
#
# Write `residual_after(tr, layer)`: the residual stream after block `layer` (`[batch, pos, d_model]`),
# built **only** from the embeddings `tr["resid_pre", 0]` and the outputs `tr["attn_out", l]` and
# `tr["mlp_out", l]` of the blocks up to and including `layer`. The check compares it with
# `tr["resid_post", layer]` at every layer.
#
# Solution: `lessons/solutions/01_attention_and_the_residual_stream.py` (in a cell:
# `%load solutions/01_attention_and_the_residual_stream.py`).

# %%
def residual_after(tr, layer):
    """The residual stream after block `layer`: [batch, pos, d_model]."""
    raise NotImplementedError  # your code here


check_residual_from_parts(residual_after, tr)

# %% [markdown]
# ## Attention patterns
#
# Attention is how information moves **between positions**. Each head, at each position (the *query*),
# computes a probability distribution over the positions up to and including itself (the *keys*):
# `tr["pattern", l]` is `[batch, head, query, key]`, and each row sums to 1. The head then moves a
# weighted mix of the keys' vectors (their *values*) into the query's residual stream.
#
# The `AttentionViewer` shows every head of every layer as a thumbnail. Click a thumbnail (or press
# Enter) to zoom in; hover a token to see what it attends to and what attends to it; click to lock it.
# `viewer.layer`, `viewer.head` and `viewer.token` follow your clicks, and setting them moves the view.

# %%
viewer = AttentionViewer(tr)
viewer

# %% [markdown]
# Several heads of layers 1 to 3 look from the last token (` is`) back at the country's name: that is
# where the fact must come from. Here is the row of one head, L1H0, for the last token: one weight per key, summing to 1.

# %%
# NBVAL_CHECK_OUTPUT
row = tr["pattern", 1][0, 0, -1]  # [key]: batch 0, head 0, query = the last token
for pos, (token, weight) in enumerate(zip(tr.tokens[0], row)):
    print(f"{pos} {token!r:>12} {float(weight):.2f}")
print("sums to 1:", abs(float(row.sum()) - 1) < 1e-4)

# %% [markdown]
# ### Exercise 1.2: where does a head look?
#
# Write `most_attended(tr, layer, head)`: the position (an `int`) that the **last token** of the first
# prompt attends to most in head `head` of layer `layer`. The check tries it on all 16 heads. You can
# compare with the viewer: zoom into a head and hover the last token.
#
# Solution: `lessons/solutions/01_attention_and_the_residual_stream.py`.

# %%
def most_attended(tr, layer, head):
    """The key position the last token attends to most in this head (an int)."""
    raise NotImplementedError  # your code here


check_most_attended(most_attended, tr)

# %% [markdown]
# ## The logit lens: when does the answer appear?
#
# The model turns its final residual stream into logits with the final layer norm and the unembedding.
# The **logit lens** applies the same two steps to the residual stream after *every* layer, as if the
# model stopped there: what would it predict? `ResidualLens` shows this as a grid, a row per layer and
# a column per position, each cell the top token (hover for the top 5); with a `target` it also gives
# the target's rank. Below the grid: the size of the residual stream, and a waterfall of direct
# contributions (the last section of this lesson). Click a cell to select its layer and position.

# %%
lens_view = ResidualLens(tr, target=answer)
lens_view

# %%
# NBVAL_CHECK_OUTPUT
lens = logit_lens(tr, k=3, target=answer)
for l in range(model.n_layers):
    top = [t for t in lens.top_tokens[l][0][-1]]  # layer l, prompt 0, last position: top-3 token texts
    print(f"after layer {l}: top-3 {top}, rank of {answer!r}: {int(lens.target_rank[l, 0, -1])}")

# %% [markdown]
# For this prompt the answer climbs from far down the list after layer 0 to the top after layer 2,
# already with a high probability (the lens view shows it per layer): the fact is found before the
# last block. The last row of the lens is exactly the model's own output.
#
# ### Exercise 1.3: read the logit lens
#
# Another fact: a person and their profession. After which layer does the logit lens **first** rank the
# answer top-1 at the last position? Give the layer number (`0`..`3`). Use `logit_lens` or a
# `ResidualLens` on this prompt.
#
# `exercise_person` gives *your* person: the first person of the world, or, if your instructor gave
# you a student id (`kit.lessons.start(student="...")` in the first cell, or `$KIT_STUDENT`), a person
# drawn for you, so that your answers are your own. The checks measure whichever person you have.
#
# Solution: `lessons/solutions/01_attention_and_the_residual_stream.py`.

# %%
person = exercise_person(model, world)  # yours: world.people[0] without a student id
prompt2 = f"{person['name']} works as a"
answer2 = " " + person["profession"]
print(f"{prompt2!r} -> {answer2!r}")

first_top1_layer = ...  # your answer: a layer number

check_first_top1_layer(first_top1_layer, model, prompt2, answer2)

# %% [markdown]
# ## Direct logit attribution: who wrote the answer?
#
# Because the final residual stream is a sum, a logit is (almost) a sum too: the final layer norm is
# linear once its scale is fixed at the value of the actual forward pass, and the unembedding is
# linear. So every part of the stream (the embeddings, each head's output, each MLP's output, each
# bias) has a **direct effect** on a logit, and the effects add up to it exactly.
#
# **Which logit?** The softmax ignores anything added to every logit alike, so a raw logit is not
# shift-invariant: a component that writes "a city comes next" raises the logit of every capital, the
# right one's included, and looks important on the raw logit while it does nothing to pick *this*
# capital. What the model must do is rank the right capital above the other capitals. So we attribute
# a **logit difference**: the answer's logit minus the mean logit of its competitors, here the other
# capitals of the world (`relation_competitors`). `contrast_attribution` returns the direct effects on
# it: `.heads[batch, layer, head]`, `.mlps[batch, layer]`, `.embed[batch]`, the biases, and `.total`,
# the logit difference itself.

# %%
# NBVAL_CHECK_OUTPUT
others = relation_competitors(model, world, "capital", answer)  # token ids of the other capitals
att = contrast_attribution(tr, [answer], [others], neurons=True)
print(f"logit of {answer!r} minus the mean logit of the {len(others)} other capitals: {float(att.total[0]):.2f}")
print(f"sum of the direct effects: {float(att.parts_sum()[0]):.2f}")
print("they agree:", bool((att.parts_sum() - att.total).abs().max() < 1e-3))
for l in range(model.n_layers):
    heads = "  ".join(f"L{l}H{h} {float(att.heads[0, l, h]):+.2f}" for h in range(model.n_heads))
    print(f"layer {l}: {heads}  | MLP{l} {float(att.mlps[0, l]):+.2f}")
print(f"embeddings {float(att.embed[0]):+.2f}, biases {float(att.attn_bias[0].sum() + att.mlp_bias[0].sum() + att.bias[0]):+.2f}")

# %% [markdown]
# ### The trap: attributing the raw logit
#
# `direct_logit_attribution(tr, answer)` attributes the raw logit of the answer alone. Compare the MLPs:

# %%
# NBVAL_CHECK_OUTPUT
raw = direct_logit_attribution(tr, answer, neurons=False)
print(f"raw logit of {answer!r}: {float(raw.total[0]):.2f}")
for l in range(model.n_layers):
    print(f"MLP{l}: on the raw logit {float(raw.mlps[0, l]):+.2f}, against the other capitals {float(att.mlps[0, l]):+.2f}")
top_raw = max(range(model.n_layers), key=lambda l: float(raw.mlps[0, l]))
print(f"largest on the raw logit: MLP{top_raw}; it adds {float(att.mlps[0, top_raw]):+.2f} against the other capitals")

# %% [markdown]
# On the raw logit MLP1 looks like the main writer of the answer; against the other capitals it adds
# far less: most of what it writes raises *every* capital ("a city comes next"), which the softmax
# cancels. The heads that look at the country's name (L1H3, L2H2, L2H3) are what single out this
# capital. From here on, every effect in these lessons is measured on a difference.
#
# The same numbers as a picture: `CircuitDiagram` draws each head and MLP as a node, coloured and sized
# by its direct effect on the logit difference. (The waterfall of the `ResidualLens` above shows the
# raw logit: read it with the trap in mind.) Direct effects miss what a component does *through*
# later components (a head that moves the subject into place, read by a later MLP, has a small direct
# effect but a large total one); lesson 03 measures those with patching.

# %%
CircuitDiagram(tr, answer=answer, attribution=att, contrast="the other capitals (mean)")

# %% [markdown]
# ### Exercise 1.4: the largest direct effect
#
# For the profession prompt of exercise 1.3, which component adds the most, directly, to the logit
# difference between the answer and the other professions (`others2` below)? Name it as
# `"L<layer>H<head>"` (a head, e.g. `"L2H3"`), `"MLP<layer>"` (e.g. `"MLP1"`) or `"embed"`.
#
# Solution: `lessons/solutions/01_attention_and_the_residual_stream.py`.

# %%
others2 = relation_competitors(model, world, "profession", answer2)  # the other professions
top_component = ...  # your answer, e.g. "L2H3" or "MLP1"

check_top_component(top_component, model, prompt2, answer2, others2)

# %% [markdown]
# ## Linked views
#
# `Dashboard` puts views side by side with their `layer`, `head` and `token` linked: click a cell of
# the lens and the attention viewer moves to that layer and token. It also exports to one HTML file
# that works offline: `Dashboard(...).to_html("tour.html")`.

# %%
Dashboard(AttentionViewer(tr), ResidualLens(tr, target=answer))

# %% [markdown]
# ## A peek at lesson 02
#
# `induction-2l` is a 2-layer model trained on text in which random segments repeat. On a sequence
# that repeats, look at layer 0, head 0: each token attends to the **previous** token (a stripe just
# below the diagonal). Layer 1's heads attend, in the second copy, to the token **after** the earlier
# occurrence of the current token (a stripe offset by the length of the segment). Lesson 02 explains
# why these two heads together let the model predict the rest of a repeated segment.

# %%
small = kit.load("induction-2l", device="cpu")
segment = "ba ko mi du se ra va te"  # tokens of induction-2l: syllables
AttentionViewer(small.trace(f"{segment} {segment}"))

# %% [markdown]
# ## Summary
#
# - The residual stream is a sum: embeddings plus every attention and MLP output. Any vector in it
#   can be split into what each component wrote.
# - An attention pattern `[batch, head, query, key]` says where each position reads from; the
#   `AttentionViewer` shows every head at once.
# - The logit lens reads the residual stream after each layer as a prediction; here the answer reaches
#   the top in the middle layers, before the last block.
# - Direct logit attribution splits a logit difference into the direct effects of the embeddings,
#   heads and MLPs, which add up to it exactly. Attribute a difference (the answer against its
#   competitors), never a raw logit: a component that raises every answer of a kind looks important
#   on the raw logit and singles out none of them.
#
# **Next**: `02_induction_heads.ipynb`: train `induction-2l` live, watch an induction head form, and
# take it apart.

# %% [markdown]
# ## Optional: the same on GPT-2 small and Pythia-160M (needs internet)
#
# The same steps on two real models: GPT-2 small (Radford et al. 2019; 12 layers of 12 heads, `d_model`
# 768) and Pythia-160M (Biderman et al. 2023, *Pythia: A Suite for Analyzing Large Language Models
# Across Training and Scaling*; a GPT-NeoX model of the same size with rotary positions and attention
# and MLP in parallel). The kit traces both with the same calls: the tokens, the residual stream as a
# sum, an attention pattern, the logit lens, and the direct attribution of a logit difference.
#
# What is published to compare with:
# - The logit lens was introduced on GPT-2 (nostalgebraist, 2020, *interpreting GPT: the logit lens*):
#   its guesses sharpen toward the output over the later layers. Belrose et al. (2023, *Eliciting Latent
#   Predictions from Transformers with the Tuned Lens*) found the plain logit lens less reliable on
#   other model families and trained a "tuned lens" on, among others, the Pythia suite; how early the
#   answer appears in Pythia-160M's lens is for you to read below (to check against their figures).
# - Which heads and MLPs write " Paris" for this prompt in either model is not a published result we
#   cite: the attribution below is your measurement. Keep the lesson's rule: attribute the difference
#   against the other cities, never the raw logit.
#
# The first cell loads both models from the Hugging Face hub (about 500 MB and 300 MB, once; then from
# the cache). Offline it prints one "Skipped" line and the cells after it do nothing.

# %%
# NBVAL_SKIP
from kit.lessons.real import label, real_models

real = real_models()  # {hub id: model} for GPT-2 small and Pythia-160M: whatever could be loaded
g_prompt, g_answer = "The Eiffel Tower is located in the city of", " Paris"
g_others = [" London", " Rome", " Berlin", " Madrid", " Vienna"]  # competing cities (each word's first token)
g_traces = {name: m.trace(g_prompt) for name, m in real.items()}
for name, m in real.items():
    print(f"{label(name)}: {m.n_layers} layers x {m.n_heads} heads, d_model {m.d_model}, d_mlp {m.d_mlp}; "
          f"tokens {g_traces[name].tokens[0]}")

# %%
# NBVAL_SKIP
for name, m in real.items():  # the residual stream is a sum, in a real model too
    tr_m = g_traces[name]
    ok = all(
        (tr_m["resid_post", l] - (tr_m["resid_pre", l] + tr_m["attn_out", l] + tr_m["mlp_out", l])).abs().max() < 1e-3
        and (tr_m["attn_out", l] - (tr_m["head_out", l].sum(2) + m.adapter.b_O(l))).abs().max() < 1e-3
        for l in range(m.n_layers))
    print(f"{label(name)}: resid_post == resid_pre + attn_out + mlp_out, attn_out == heads + bias, in every layer: {ok}")
    pattern = tr_m["pattern", m.n_layers // 2][0, :, -1]  # [head, key]: a middle layer, from the last token
    head = int(pattern[:, 1:].max(1).values.argmax())  # the head most focused on one earlier token (not the first)
    key = int(pattern[head, 1:].argmax()) + 1
    print(f"  layer {m.n_layers // 2}: head {head} sends {float(pattern[head, key]):.2f} of the last token's "
          f"attention to {tr_m.tokens[0][key]!r}")

# %%
# NBVAL_SKIP
g_lens, g_att = {}, {}
for name, m in real.items():
    g_lens[name] = logit_lens(g_traces[name], k=3, target=g_answer)
    ranks = g_lens[name].target_rank[:, 0, -1].tolist()  # [layer]
    first = next((l for l, r in enumerate(ranks) if r == 0), None)
    print(f"{label(name)}: rank of {g_answer!r} after each layer {ranks}; first top-1 after layer {first}")
    g_att[name] = att_m = contrast_attribution(g_traces[name], [g_answer], [g_others])
    print(f"  logit difference vs the other cities {float(att_m.total[0]):+.2f} = sum of the parts "
          f"{float(att_m.parts_sum()[0]):+.2f}")
    top = att_m.heads[0].flatten().topk(5)
    print("  heads adding most:", [f"L{int(i) // m.n_heads}H{int(i) % m.n_heads} {float(v):+.2f}"
                                   for v, i in zip(top.values, top.indices)])
    print("  MLPs:", [round(float(v), 2) for v in att_m.mlps[0]])
    raw = direct_logit_attribution(g_traces[name], g_answer)
    top_raw = int(raw.mlps[0].argmax())
    print(f"  the trap: MLP{top_raw} adds most to the raw logit ({float(raw.mlps[0, top_raw]):+.2f}) and "
          f"{float(att_m.mlps[0, top_raw]):+.2f} against the other cities")

# %%
# NBVAL_SKIP
from IPython.display import display  # noqa: E402

for name in real:
    display(Dashboard(AttentionViewer(g_traces[name]), ResidualLens(g_traces[name], target=g_answer)))
