# %% [markdown]
# # 05 · Find a circuit
#
# "When Ava and Bo went to the store, Bo gave a drink to" ... **Ava**. To finish this sentence, a model
# must notice which name was repeated and say the *other* one: **indirect-object identification** (IOI).
# Wang et al. (2022) found the circuit GPT-2 small uses for it: 26 heads in 7 classes. In this lesson you
# find the circuit of a model small enough to take apart completely, with the methods they used:
#
# 1. **which components matter**: activation patching with a logit-difference metric (and its fast
#    approximation, attribution patching, with its failure mode);
# 2. **how they connect**: path patching, a sender's effect *only* through chosen receivers;
# 3. **what each computes**: attention patterns, QK and OV circuits, composition scores;
# 4. **how sure we are**: zero, mean and resample ablation, and backup heads;
# 5. a `CircuitDiagram` drawn from the **measured** edges.
#
# **Prerequisites**: lessons 01-03 (traces, `kit.Patch`, activation patching).
#
# **Model**: `ioi-3l`, a 3-layer GPT-2 with 4 heads per layer trained by the kit on IOI sentences with 24
# invented names (`kit/zoo/ioi-3l/MODEL_CARD.md`). The prompts name IO and S, repeat S (S2) and end at
# END, just before the answer. Runs offline on a CPU in under a minute.

# %%
import torch

import kit
import kit.analysis as A
from kit.charts import head_heatmap
from kit.lessons.circuit import (
    check_logit_diff, check_sender, check_top_head, exercise_batch, exercise_receiver, ioi_batch, patching_by_head,
)
from kit.train.ioi import IOIRecipe
from kit.widgets import AttentionViewer, CircuitDiagram

torch.set_num_threads(1)
model = kit.load("ioi-3l", device="cpu")
batch = ioi_batch(32)  # 32 clean prompts of one template, their corrupted twins, answers IO and subjects S
print(batch.clean[0], "->", batch.io[0])
print(batch.corrupted[0])

# %% [markdown]
# ## The metric: a logit difference
#
# We measure how much the model prefers the right name with `logit[IO] - logit[S]` at the last position:
# a difference of logits is unchanged when every logit shifts together, and it adds up linearly over the
# components that write into the residual stream (a probability does neither). The **corrupted** prompt
# replaces the repeated S2 by a third name C ("ABC"): no name repeats, so nothing says which of A and B
# to choose, and the logit difference should fall to about 0.
#
# ### Exercise 5.1: the logit difference
#
# Write `logit_diff(logits, io, s)`: `logits[batch, pos, vocab]`, `io[batch]` and `s[batch]` token ids;
# return `diff[batch]`, one value per prompt.
#
# Solution: `lessons/solutions/05_find_a_circuit.py` (in a cell: `%load solutions/05_find_a_circuit.py`).

# %%
def logit_diff(logits, io, s):
    """diff[batch]: logits[b, -1, io[b]] - logits[b, -1, s[b]]."""
    raise NotImplementedError  # your code here


check_logit_diff(logit_diff)

# %%
# NBVAL_CHECK_OUTPUT
io_ids = torch.tensor([A.token_id(model, t) for t in batch.io])
s_ids = torch.tensor([A.token_id(model, t) for t in batch.s])
rows = torch.arange(len(batch))
clean_tr = model.trace(batch.clean, capture=["pattern", "resid_pre", "resid_post", "head_out", "mlp_out"])
corrupted_tr = model.trace(batch.corrupted, capture=[])
last = lambda tr: tr.logits[:, -1]  # noqa: E731
clean_diff = (last(clean_tr)[rows, io_ids] - last(clean_tr)[rows, s_ids]).mean()
corrupted_diff = (last(corrupted_tr)[rows, io_ids] - last(corrupted_tr)[rows, s_ids]).mean()
print(f"logit difference, clean: {clean_diff:.1f}; corrupted: {corrupted_diff:.1f}")

# %% [markdown]
# ## 1. Which components matter: activation patching
#
# Run the corrupted prompts, and patch in **one head's clean output** (at every position, with
# `kit.Patch("z", layer, clean_trace, head=h)`): how much of the logit difference comes back?
# `patching_by_head` does it for every head over the 32 prompt pairs (0: nothing restored, 1: everything).
# On a single prompt pair, `kit.analysis.activation_patching(..., kind="heads")` computes the same grid in a
# few batched passes; single prompts vary a lot, so we measure over many.

# %%
# NBVAL_CHECK_OUTPUT
restored = patching_by_head(model, batch)  # [layer, head]
print(restored.numpy().round(2) + 0.0)  # (+ 0.0 prints -0.0 as 0.0)

# %%
head_heatmap(restored, "share of the logit difference restored by patching one head")

# %% [markdown]
# ### Exercise 5.2: the head that matters most
#
# Which head, patched alone, restores the most? Answer with `(layer, head)`.
#
# The question is about *your* prompts, `my_batch`: the 32 pairs above, or, if your instructor gave you
# a student id (`kit.lessons.start(student="...")`, or `$KIT_STUDENT`), 32 pairs of another template
# and other names drawn for you: then measure your own grid with `patching_by_head(model, my_batch)`.

# %%
my_batch = exercise_batch(model)  # yours: the same prompts as `batch` without a student id
top_head = ...  # (layer, head)

check_top_head(top_head, model, my_batch)

# %% [markdown]
# Two heads stand out: **L1H1** and **L2H2**. (The model card calls them the heads that carry the answer.)
#
# ### The fast approximation: attribution patching
#
# Patching needs one forward pass per cell. **Attribution patching** (Nanda 2023) estimates every cell at
# once from one gradient: the change is about `(clean activation - corrupted activation) · dM/d(activation)`,
# taken on the corrupted run. `kit.analysis.agreement` compares it with real patching, cell by cell.

# %%
# NBVAL_CHECK_OUTPUT
pair = (batch.clean[0], batch.corrupted[0], batch.io[0], batch.s[0])
for kind in ("heads", "resid"):
    estimate = A.attribution_patching(model, *pair, kind=kind)
    real = A.activation_patching(model, *pair, kind=kind)
    agree = A.agreement(estimate, real)
    (row, col), err = agree.worst(1)[0]
    print(f"{kind:5s}: correlation with real patching {agree.correlation:+.2f}; worst cell ({row}, {col}) "
          f"off by {err:+.1f}")

# %% [markdown]
# For heads the estimate is excellent (correlation 0.99). For the residual stream it fails: the worst cell
# is position 10, S2 itself, where patching swaps a whole token's residual stream (the name C for the
# name S). That is the **large patch** failure of a first-order approximation; the other is a **saturated
# softmax** (a gradient of about 0 where a probability sits at 0 or 1). Use attribution patching to find
# candidates quickly, and confirm them with real patching.
#
# ## 2. How they connect: path patching
#
# Patching L1H1 restores 0.72 of the gap, but *through which path*? **Path patching** corrupts one sender
# head and lets the change reach only the chosen receivers: every other head is frozen at its clean value.
# First the receivers are the logits (the direct path), then L2H2 at the last position.

# %%
# NBVAL_CHECK_OUTPUT
direct = A.path_patching(model, *batch.args(), receivers="logits")
into_l2h2 = A.path_patching(model, *batch.args(), receivers=[(2, 2)], receiver_pos=-1)
print("direct paths to the logits:", [(f"L{l}H{h}", round(e, 2)) for (l, h), e in direct.top(3)])
print("paths into L2H2 at END:    ", [(f"L{l}H{h}", round(e, 2)) for (l, h), e in into_l2h2.top(3)])

# %% [markdown]
# (An effect of -0.39 means that corrupting that path alone removes 39 % of the clean-corrupted gap.)
#
# ### Exercise 5.3: who feeds the receiver?
#
# Which head sends the most through `receiver` (your receiver: L2H2 without a student id, else a head of
# layer 2 drawn for you) on your prompts `my_batch`? Answer with `(layer, head)`.

# %%
receiver = exercise_receiver(model, my_batch)  # (layer, head): (2, 2) without a student id
print(f"receiver: L{receiver[0]}H{receiver[1]}")
sender = ...  # (layer, head)

check_sender(sender, model, receiver, my_batch)

# %% [markdown]
# Path patching can also split *how* a sender reaches a receiver: through the receiver's queries and keys
# (where it looks: `receiver_input="pattern"`) or through its values (what it moves: `"values"`).

# %%
# NBVAL_CHECK_OUTPUT
for how in ("pattern", "values"):
    r = A.path_patching(model, *batch.args(), receivers=[(2, 2)], receiver_pos=-1, receiver_input=how)
    print(f"L1H1 -> L2H2 through the {how}: {round(float(r.effect[1, 1]), 2) + 0.0:+.2f}")

# %% [markdown]
# L1H1 changes **where L2H2 looks**, not what it reads. This is the shape of the IOI circuit in GPT-2: a
# head at END that reads the repeated name (Wang et al.'s *S-inhibition* heads) steers the queries of a
# later head that copies a name to the output (their *name movers*).
#
# ## 3. What each computes
#
# Attention first: from END (the last token), where do the two heads look?

# %%
# NBVAL_CHECK_OUTPUT
pos = {"IO": [], "S1": [], "S2": []}
for b, toks in enumerate(clean_tr.tokens):
    io_tok, s_tok = batch.io[b], batch.s[b]
    pos["IO"].append(toks.index(io_tok))
    pos["S1"].append(toks.index(s_tok))
    pos["S2"].append(len(toks) - 1 - toks[::-1].index(s_tok))
for layer, head in [(1, 1), (2, 2)]:
    p = clean_tr["pattern", layer][rows, head, -1]  # [batch, key]: attention from END
    share = {k: float(p[rows, torch.tensor(v)].mean()) for k, v in pos.items()}
    print(f"L{layer}H{head} from END:", {k: round(v, 2) for k, v in share.items()})

# %%
AttentionViewer(clean_tr, layer=1, head=1, token=-1)

# %% [markdown]
# L1H1 looks at S2 and at IO, almost never at S1; L2H2 looks at IO most. Now the weights alone.
# `kit.analysis.ov_circuit` is the full **OV circuit** `W_E W_V W_O W_U` of a head: row = the token it
# attends to, column = the logit it writes. Restricted to the 24 names: does L2H2 copy names?
# `qk_circuit` is the full **QK circuit** `W_E W_Q W_K^T W_E^T`; `composition_scores` (Elhage et al.
# 2021) measure how much a later head's queries (Q), keys (K) or values (V) read what an earlier head writes.

# %%
# NBVAL_CHECK_OUTPUT
names = IOIRecipe().names()  # the 24 names the model knows
ov = A.ov_circuit(model, 2, 2, tokens=names)
print(ov)
print(f"chance: {1 / len(names):.2f}")
comp = {k: float(A.composition_scores(model, k)[1, 1, 2, 2]) for k in "qkv"}
mean, std = A.composition_baseline(model, "q")
print("L1H1 -> L2H2 composition:", {k: round(v, 2) for k, v in comp.items()}, f"(random: {mean:.2f} ± {std:.2f})")

# %% [markdown]
# L2H2's OV circuit raises the attended name itself for many names (a copying head), and L1H1 composes
# with L2H2 most through its **queries** (Q-composition), as path patching said.
#
# The classic example of composition is in `induction-2l` (lesson 02): the induction head's **keys** read
# what the previous-token head wrote (K-composition), and it stands out in the weights alone:

# %%
# NBVAL_CHECK_OUTPUT
import json  # noqa: E402

from kit.models import ZOO_DIR  # noqa: E402

induction = kit.load("induction-2l", device="cpu")
card = json.loads((ZOO_DIR / "induction-2l" / "figures.json").read_text())["measured"]
prev, ind = card["prev_token_head"], card["induction_head"]  # the heads the model card names
into_ind = {k: A.composition_scores(induction, k)[0, :, 1, ind] for k in "qkv"}  # [head of layer 0]
strongest = max(((float(v[h]), k, h) for k, v in into_ind.items() for h in range(induction.n_heads)))
print(f"strongest composition into the induction head: {strongest[1].upper()}-composition; "
      f"from the previous-token head: {strongest[2] == prev}")

# %%
head_heatmap(A.composition_scores(induction, "k")[0, :, 1], "induction-2l: K-composition, L0 head (row) -> L1 head")

# %% [markdown]
# The previous-token head feeds the **keys** of the induction head: K-composition, found in the weights.
#
# ## 4. How sure are we? Ablations and backup
#
# To remove a head, we must replace its output with *something*. **Zero** ablation (0, a value the head may
# never take), **mean** ablation (its mean over the prompts, per position), **resample** ablation (its
# output on another prompt): `compare_ablations` runs all three on every head (mean over prompts of the
# change in logit difference).

# %%
# NBVAL_CHECK_OUTPUT
cmp = A.compare_ablations(model, batch.clean, batch.io, batch.s)
for method in cmp.methods:
    print(method)
    print(cmp.of(method).numpy().round(1) + 0.0)

# %% [markdown]
# All three agree that L1H1 and L2H2 hurt most. But look at **L0H3**: ablating it costs about 2 logits by
# every method, while patching it restored under a tenth of the gap (0.08 in the patching grid). The two methods ask different
# questions: patching asks what the head carries that *differs* between clean and corrupted prompts;
# ablation asks what breaks when the head's usual output is gone (here, probably where the names are).
#
# **Backup**: when a head is removed, do others make up for it? `backup_heads` compares every head's direct
# effect on the logit difference before and after the ablation.

# %%
# NBVAL_CHECK_OUTPUT
for method in ("mean", "resample"):
    backup = A.backup_heads(model, batch.clean, batch.io, batch.s, ablate=[(2, 2)], method=method)
    print(backup)
    print(backup.change.nan_to_num(0).numpy().round(2) + 0.0)

# %% [markdown]
# Weak backup: with L2H2 mean-ablated, L1H1 and L2H3 raise their direct effects by 0.25 to 0.32, a small
# part of L2H2's own direct effect (about 3); with resample ablation no head gains more than 0.2. GPT-2's IOI
# circuit has strong backup name movers; this small model has little.
#
# ## 5. The circuit, from measured edges
#
# The nodes are weighted by each head's **direct path** to the logits (path patching with the logits as
# receivers, sign flipped so that a head that helps is positive), and the head-to-head edges are the path
# patching effects into the two answer heads: measured, not guessed from weights.

# %%
into_l1h1 = A.path_patching(model, *batch.args(), receivers=[(1, 1)], receiver_pos=-1)
edges = [((l, h), (2, 2), float(into_l2h2.effect[l, h])) for l, h in into_l2h2.senders]
edges += [((l, h), (1, 1), float(into_l1h1.effect[l, h])) for l, h in into_l1h1.senders]
weights = {"heads": -direct.effect}
CircuitDiagram(model, weights=weights, edges=edges, edge_label="path patching effect", threshold=0.2)

# %% [markdown]
# **What we found** (every figure above is asserted by `tests/test_lesson05_claims.py`): L1H1 attends from
# END to S2 and IO, writes a direct push toward IO, and steers L2H2's queries; L2H2 attends to IO and copies
# it. The model found no duplicate-token head (the model card explains why: in these sentences S2 is always
# the most recent name, so a head can find it by position), and its backup is weak.
#
# **Next**: compare with GPT-2's circuit below, or read Wang et al. (2022), *Interpretability in the Wild*.

# %% [markdown]
# ## Optional: the same on GPT-2 small and Pythia-160M (needs internet)
#
# The lesson's pipeline on two real models, with IOI prompts built from common one-token names ("When
# Mary and John went to the store, John gave a drink to"): the logit difference IO − S, activation
# patching by head, path patching (each head's direct path to the logits, the senders into the top
# head), what the top heads attend to from END, ablations and backup, and the circuit from measured
# edges. `kit.lessons.circuit.gpt2_ioi` runs steps 1-2 on any model.
#
# What is published to compare with, on **GPT-2 small** (Wang et al. 2022, *Interpretability in the
# Wild: a Circuit for Indirect Object Identification in GPT-2 small*): name movers **9.6, 9.9, 10.0**;
# S-inhibition heads **7.3, 7.9, 8.6, 8.10**; duplicate-token heads **0.1, 3.0**; induction heads **5.5,
# 6.9**; previous-token heads **2.2, 4.11**; negative name movers **10.7, 11.10**; and backup name movers
# that take over when the name movers are ablated. Their prompts and metric differ in detail (more
# templates, mean ablation over an "ABC" distribution), so expect the same heads near the top, not the
# same numbers. On **Pythia** models, Tigges et al. (2024, *LLM Circuit Analyses Are Consistent Across
# Training and Scale*) follow the IOI circuit's components through training and across sizes; we cite
# no head indices for Pythia-160M (to check against their paper): read them off below.
#
# The first cell loads both models (about 500 MB and 300 MB, once). Offline it prints one "Skipped" line
# and the cells after it do nothing.

# %%
# NBVAL_SKIP
import altair as alt  # noqa: E402
from IPython.display import display  # noqa: E402

from kit.lessons.circuit import GPT2_NAMES, gpt2_ioi  # noqa: E402
from kit.lessons.real import label, real_models  # noqa: E402

real = real_models()  # {hub id: model} for GPT-2 small and Pythia-160M: whatever could be loaded
PUBLISHED_IOI = {"gpt2": {"name movers": [(9, 6), (9, 9), (10, 0)],
                          "S-inhibition": [(7, 3), (7, 9), (8, 6), (8, 10)],
                          "negative name movers": [(10, 7), (11, 10)],
                          "induction": [(5, 5), (6, 9)], "duplicate-token": [(0, 1), (3, 0)]}}
g_reports = {}
for name, m in real.items():
    split = [n for n in GPT2_NAMES if len(m.tokenizer(n, add_special_tokens=False)["input_ids"]) != 1]
    if split:  # the prompts must have one token length, and the answer must be one token
        print(f"{label(name)}: the names {split} are not one token; drop them with gpt2_ioi(m, names=...)")
    g_reports[name] = report = gpt2_ioi(m, names=tuple(n for n in GPT2_NAMES if n not in split))
    print(f"{label(name)}: logit difference clean {report['clean']:.2f}, corrupted {report['corrupted']:.2f}")
    print("  heads that restore most:", [(f"{l}.{h}", round(v, 2)) for (l, h), v in report["top_heads"]])
    print("  strongest direct paths: ", [(f"{l}.{h}", round(e, 2)) for (l, h), e in report["direct_paths"]])
    print("  senders into the top head:", report["senders_into_top"])
    for role, heads in PUBLISHED_IOI.get(name, {}).items():
        print(f"  published {role}: share restored by patching",
              {f"{l}.{h}": round(float(report["patching"][l, h]), 2) for l, h in heads})
alt.hconcat(*[head_heatmap(g_reports[name]["patching"], f"{label(name)}: share restored by patching one head")
              for name in real]) if real else None

# %%
# NBVAL_SKIP
for name, m in real.items():  # what the top heads attend to from END: IO, S1 or S2?
    b = g_reports[name]["batch"]
    tr_m = m.trace(b.clean, capture=["pattern"])
    where = {"IO": [], "S1": [], "S2": []}
    for i, toks in enumerate(tr_m.tokens):
        where["IO"].append(toks.index(b.io[i]))
        where["S1"].append(toks.index(b.s[i]))
        where["S2"].append(len(toks) - 1 - toks[::-1].index(b.s[i]))
    rows = torch.arange(len(b.clean))  # the prompts have one token length: END is the last position
    heads = [h for h, _ in g_reports[name]["top_heads"][:3]] + [h for h in PUBLISHED_IOI.get(name, {}).get("name movers", [])]
    for layer, head in dict.fromkeys(heads):
        p = tr_m["pattern", layer][:, head, -1]  # [batch, key]: attention from END
        print(f"{label(name)} {layer}.{head} from END:",
              {k: round(float(p[rows, torch.tensor(v)].mean()), 2) for k, v in where.items()})

# %%
# NBVAL_SKIP
for name, m in real.items():  # ablations and backup, then the circuit from the measured edges
    report = g_reports[name]
    b = report["batch"]
    top = [h for h, _ in report["top_heads"]]
    cmp_m = A.compare_ablations(m, b.clean, b.io, b.s, heads=top)
    for method in cmp_m.methods:
        print(f"{label(name)}, {method} ablation, change in logit difference:",
              {f"{l}.{h}": round(float(cmp_m.of(method)[l, h]), 2) for l, h in top})
    mover = report["direct_paths"][0][0]  # the head with the strongest direct path to the logits
    backup = A.backup_heads(m, b.clean, b.io, b.s, ablate=[mover], method="mean")
    gain = backup.change.nan_to_num(-float("inf")).flatten().topk(3)
    print(f"  with {mover[0]}.{mover[1]} (the strongest direct path) mean-ablated, the heads whose direct effect rises "
          "most:", [(f"{int(i) // m.n_heads}.{int(i) % m.n_heads}", round(float(v), 2))
                    for v, i in zip(gain.values, gain.indices)])
    receiver = top[0]  # the top patched head, and the senders path patching found into it
    edges = [(sender, receiver, effect) for sender, effect in report["senders_into_top"] or []]
    display(CircuitDiagram(m, weights={"heads": report["patching"]}, edges=edges,
                           edge_label="path patching effect", threshold=0.2))
