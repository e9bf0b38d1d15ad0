# %% [markdown]
# # 04 · Inside the MLPs: neurons, polysemanticity and SNMF features
#
# Lesson 03 found MLPs that write the answer. What is inside one? An MLP layer is a few hundred
# neurons; each reads a direction of the residual stream and writes another. This lesson reads single
# neurons, sees why they are hard to interpret, and decomposes the layer's activations into
# features with semi-nonnegative matrix factorization (SNMF), after *Decomposing MLP Activations into
# Interpretable Features via Semi-Nonnegative Matrix Factorization* (Shafran et al., 2025). Then it
# steers the model with a feature and compares it, at exactly matched KL, over several concepts and
# seeds, with the supervised baseline (difference-in-means, DiffMeans) and with the unsupervised one
# that paper compares against, a sparse autoencoder (SAE).
#
# **Learning goals**
# - decode a neuron: the tokens its output weights promote, and the tokens that activate it;
# - recognise a polysemantic neuron, and measure label purity;
# - fit SNMF, read its features, and compare their purity with single neurons, plain NMF and chance;
# - compute a DiffMeans direction, and steer with a feature, DiffMeans, an SAE latent and a random
#   direction at the same KL divergence; call a difference inside the spread a tie;
# - recognise a **relation feature**: a direction that changes which attribute the model retrieves,
#   not which fact it knows.
#
# **Prerequisites**: lesson 03 (the MLP that names the answer); matrix products, means, the KL
# divergence of two distributions.
#
# **Model**: `facts-4l` (4 layers, an invented world of countries and people). Every figure here is
# computed in the cells: the prose says how to read it.

# %%
import torch
from IPython.display import Markdown
from threadpoolctl import threadpool_limits  # installed with scikit-learn, which the NMF baseline needs

import kit
from kit.analysis import (
    compare_purity, compare_steering, decode_direction, decode_neurons, label_purity, mlp_activations,
    random_sparse_like, snmf, steer_mlp, steering_table, top_activating,
)
from kit.analysis.sae import train_sae
from kit.lessons import mlp as lesson
from kit.train import load_world
from kit.widgets import NeuronProbe

torch.manual_seed(0)
torch.set_num_threads(1)  # the model is tiny: one thread is fastest, above all on a busy, shared CPU
threadpool_limits(1)  # the same for numpy's BLAS (scikit-learn's NMF below)
model = kit.load("facts-4l", device="cpu")
world = load_world()
LAYER = 0  # the first MLP: in lesson 03 it enriches the subject's last token with the subject's attributes
print(f"layer {LAYER}: {model.d_mlp} neurons, each writing a direction of the {model.d_model}-dim residual stream")

# %% [markdown]
# ## The data: the world's sentences, every token labelled
#
# We take sentences of every relation ("The capital of X is Y.") and label each token by what it is
# in the world: a word of some relation's template, part of a country's or a person's name, part of
# an answer of some type, or a sentence boundary (`<|bos|>`, the full stop). These labels never enter the model or the factorization; they only let us
# score how interpretable a unit is.

# %%
prompts = lesson.world_sentences(world, per_relation=60)
names = lesson.label_names(world)
col = mlp_activations(model, [p.sentence for p in prompts], LAYER)  # acts[d_mlp, n_tokens]
per_prompt = lesson.token_labels(model, world, prompts)
labels = torch.tensor([per_prompt[b][q] for b, q in zip(col.prompt.tolist(), col.pos.tolist())])  # [n_tokens]
print(col)
print("labels:", names)
p0 = prompts[0]
print(p0.sentence, "->", [(t, names[l]) for t, l in zip(model.to_str_tokens(p0.sentence), per_prompt[0])])

# %% [markdown]
# The concept we follow: the positions where the model is about to say a currency, i.e. the last
# token of each currency prompt (`lesson.concept_mask`).

# %%
CONCEPT = "currency" if "currency" in world.relations else list(world.relations)[0]
mask = lesson.concept_mask(model, col, prompts, CONCEPT)  # [n_tokens] bool
print(f"{int(mask.sum())} of {col.n_tokens} tokens predict a {CONCEPT} answer, e.g. {col.context(int(mask.nonzero()[0]))}")

# %% [markdown]
# ## Neurons as key-value memories
#
# Neuron `n` of layer `l` adds `mlp_post[n] * W_out[n]` to the residual stream. Read `W_out[n]` through
# the final norm's weight and the unembedding and you get the tokens it promotes: the neuron's
# "value". Its "key" is what makes it fire: its top-activating tokens. Take the neuron whose mean
# activation rises most on our concept's positions:

# %%
neuron = lesson.concept_neuron(col.acts, mask)  # the neuron whose mean activation rises most there
dec = decode_neurons(model, k=8, layers=[LAYER])
print(f"neuron {neuron} of layer {LAYER} promotes: {dec.tokens(0, neuron)}")
print(f"and suppresses: {dec.tokens(0, neuron, suppressed=True)}")
for ex in top_activating(model, [p.sentence for p in prompts], LAYER, neuron, k=6):
    print(f"  {ex['activation']:6.2f}  {ex['context']!r}")

# %% [markdown]
# The probe shows the neuron's activation on each token of a few sentences, its decoded tokens, and
# a clamp slider that reruns the model with the neuron set to a value (try 0 to ablate it).

# %%
probe_texts = [p.sentence for p in prompts if p.relation == CONCEPT][:4] + [p.sentence for p in prompts[:4]]
NeuronProbe(model, probe_texts, layer=LAYER, neuron=neuron, prompt=[p.text for p in prompts if p.relation == CONCEPT][0])

# %% [markdown]
# ## Exercise 1: decode a neuron yourself
#
# Write `decode(layer, neuron, k)` returning the `k` tokens (texts, best first) that the neuron's
# output promotes most: `model.adapter.W_out(layer)` is `[d_mlp, d_model]`, the final norm's weight is
# `model.adapter.final_norm.weight` (`[d_model]`), `model.adapter.W_U` is `[d_model, vocab]`, and
# `model.to_str_tokens(ids)` turns ids into texts.
#
# The check decodes the neuron above and two more; if your instructor gave you a student id
# (`kit.lessons.start(student="...")` in the first cell, or `$KIT_STUDENT`), those two are drawn for you,
# and so are the feature, the concept and the target of exercises 2 to 4.
#
# The solution is in `lessons/solutions/04_mlp_decomposition.py` (`%load solutions/04_mlp_decomposition.py`).

# %%
def decode(layer: int, neuron: int, k: int) -> list[str]:
    raise NotImplementedError  # your code here


lesson.check_decoded_tokens(decode, model, lesson.exercise_neurons(model, LAYER, neuron))

# %% [markdown]
# ## Polysemanticity
#
# Label purity of a unit: of its 20 top-activating tokens, the share that carries its most common
# label. 1.0 means all its top tokens are of one kind. Random tokens give the chance level. Here is
# the strong neuron (largest activation above the median neuron's) whose top tokens span the most labels:

# %%
poly = lesson.polysemantic_neuron(col.acts, labels)
top20 = col.acts[poly].topk(20).indices
kinds = {}
for i in top20.tolist():
    kinds[names[int(labels[i])]] = kinds.get(names[int(labels[i])], 0) + 1
print(f"neuron {poly}: purity {float(label_purity(col.acts[poly][None], labels).purity[0]):.2f}; labels of its top 20 tokens:")
print(sorted(kinds.items(), key=lambda kv: -kv[1]))
print("examples:", [col.context(int(i), 3, 0) for i in top20[:8]])
print("it promotes:", dec.tokens(0, poly))

# %% [markdown]
# One neuron, many unrelated kinds of token: reading it as "the X neuron" would mislead. That is why we
# look for directions made of several neurons instead.
#
# ## SNMF: features from co-activated neurons
#
# SNMF factors the activations `A[d_mlp, n_tokens] ≈ Z[d_mlp, k] @ Y[k, n_tokens]` with `Y >= 0` (how
# strongly each of `k` features fires on each token) and `Z` sparse, of any sign (each feature a
# signed combination of a few neurons). A feature is tied to the tokens that fire it by construction.
# `compare_purity` fits SNMF and plain NMF (scikit-learn on the activations clipped at zero, the Ecco
# approach) with the same `k`, and scores them, every single neuron and random tokens with the labels.
# We keep it small (`k=40` features, at most 60 iterations) so that the lesson stays fast.

# %%
cmp = compare_purity(col.acts, labels, k=40, n_iter=60)
res = cmp.snmf
print(res)
Markdown(cmp.table())

# %%
# NBVAL_CHECK_OUTPUT
for unit in cmp.purity:
    print(f"{unit}: mean purity {cmp.mean(unit):.2f}")
print(f"random tokens (chance): {cmp.chance:.2f}")
print("SNMF features purer than single neurons:", cmp.mean("SNMF features") > cmp.mean("single neurons"))
print("SNMF features purer than chance:", cmp.mean("SNMF features") > cmp.chance)

# %% [markdown]
# The feature that fires on our concept's positions (`lesson.pick_feature`: most of its top tokens
# are in the mask):

# %%
feature = lesson.pick_feature(res.Y, mask)
print(f"feature {feature}: {float(mask[res.top_tokens(feature, 20)].float().mean()):.0%} of its top 20 tokens "
      f"predict a {CONCEPT} answer")

# %% [markdown]
# ## Exercise 2: label purity of a feature, by hand
#
# `res.Y[feature_2]` is the activation of your feature on every token (`[n_tokens]`), `labels` the label of
# every token. Take its 20 highest tokens and give the share carrying the most common label.

# %%
feature_2 = lesson.exercise_feature(res.Y, labels, mask)  # yours: `feature` without a student id
print(f"your feature: {feature_2}")
answer_2 = ...  # a number between 0 and 1

lesson.check_feature_purity(answer_2, res.Y[feature_2], labels)

# %% [markdown]
# What do features fire on, and what do they write? Our feature and a few others:

# %%
purity = label_purity(res.Y, labels)
for j in [feature] + [j for j in range(4) if j != feature]:
    print(f"feature {j} (purity {float(purity.purity[j]):.2f}, mostly {names[int(purity.label[j])]}):")
    print("   fires on:", [col.context(int(i), 3, 0) for i in res.top_tokens(j, 5)])
    print("   writes:  ", decode_direction(model, LAYER, res.Z[:, j], 6))

# %%
NeuronProbe(model, probe_texts, layer=LAYER, features=res.Z, feature=feature)

# %% [markdown]
# ## Exercise 3: a DiffMeans direction
#
# The supervised baseline: the mean activation vector on the concept's tokens minus the mean on all
# other tokens. Compute it for your concept `CONCEPT_3` (the lesson's, without a student id) from
# `col.acts` (`[d_mlp, n_tokens]`) and its mask `mask_3` (`[n_tokens]`).

# %%
CONCEPT_3 = lesson.exercise_concept(world, CONCEPT)  # yours: CONCEPT without a student id
mask_3 = lesson.concept_mask(model, col, prompts, CONCEPT_3)  # [n_tokens] bool
print(f"your concept: {CONCEPT_3} ({int(mask_3.sum())} tokens)")
answer_3 = ...  # a tensor [d_mlp]

lesson.check_diff_means(answer_3, col.acts, mask_3)

# %% [markdown]
# The library's version, used from here on:

# %%
from kit.analysis import diff_means

dm = diff_means(col.acts, mask)  # [d_mlp]
print(f"DiffMeans: largest entry neuron {int(dm.argmax())} ({float(dm.max()):+.2f})")

# %% [markdown]
# ## Steering at matched KL
#
# Add `α · u` (`u` a unit direction of the MLP's neuron space) to this MLP's activations at the
# last token of prompts about another relation, and see whether the model now says a currency. A
# bigger `α` always disrupts more, so methods are compared at the same disruption: the `α` at which the
# mean KL divergence between the clean and the steered next-token distributions reaches a target,
# found by bisection, here to within 1 %. The score is how much the log-probability of the concept's
# answers (every currency of the world) rises. Three directions: the SNMF feature's `z`, DiffMeans,
# and a random direction as sparse as `z`.

# %%
SOURCE = next(r for r in world.relations if r != CONCEPT)
steer_facts = [p for p in world.prompts("held_out", SOURCE)][:20]
steer_prompts = [p.text for p in steer_facts]
directions = {"SNMF feature": res.Z[:, feature], "DiffMeans": dm, "random (as sparse as z)": random_sparse_like(res.Z[:, feature])}
steering = compare_steering(model, steer_prompts, LAYER, directions, target_kl=1.0, concept=world.answers(CONCEPT), pos=-1,
                            rtol=0.01)
print(f"{len(steer_prompts)} {SOURCE} prompts, e.g. {steer_prompts[0]!r}; concept: the {CONCEPT} answers")
Markdown(steering_table(steering))

# %%
# NBVAL_CHECK_OUTPUT
print("all matched to KL 1.0 within 1%:", all(r.matched for r in steering.values()))
for name, r in steering.items():
    print(f"{name}: log-prob of the concept rises by {r.gain:+.2f} (KL {r.kl:.3f})")
print("SNMF feature beats random:", steering["SNMF feature"].gain > steering["random (as sparse as z)"].gain)
print("DiffMeans beats random:", steering["DiffMeans"].gain > steering["random (as sparse as z)"].gain)

# %% [markdown]
# On this one concept the SNMF feature and DiffMeans are within a few hundredths of each other: one
# concept and one fit cannot tell them apart. Before any "beats", the comparison must be repeated
# over concepts and seeds (below).
#
# ## A relation feature, not a fact
#
# What does the steered model say? For each steered prompt, is its top token the subject's **own**
# currency, another country's currency, the capital it was asked for, or something else?

# %%
# NBVAL_CHECK_OUTPUT
print(f"{steer_prompts[0]!r}, steered:")
for name, r in steering.items():
    top = r.logprobs[0].topk(3)
    print(f"  {name:>24}: {[(t, round(float(p), 2)) for t, p in zip(model.to_str_tokens(top.indices), top.values.exp())]}")
print(f"its subject's own {CONCEPT}: {' ' + next(c[CONCEPT] for c in world.countries if c['name'] == steer_facts[0].subject)!r}")
for name, r in steering.items():
    said = lesson.steered_answers(model, world, steer_facts, r.logprobs, CONCEPT)
    print(f"{name:>24}: own {CONCEPT} {said['own']:.0%}, another's {said['other']:.0%}, "
          f"the asked {SOURCE} {said['asked']:.0%}, else {said['else']:.0%}")

# %% [markdown]
# Steered with the currency feature, "Fusuvaria's capital city is" continues with **Fusuvaria's own
# currency**, and so do most prompts: the feature did not write a currency, it changed the *question*.
# At the last prompt token, layer 0's MLP does not hold facts (it cannot: the subject is several
# tokens back, and attention has not yet brought anything over); it holds the **relation**, "a currency
# comes next". The fact is retrieved later, by the extractor head of lesson 03 (L1H3), which reads
# the subject's attributes from its enriched last token, and the relation decides which one wins.
# So an SNMF feature found "for currency" here is a relation feature; the facts themselves are
# enriched at the subject's last token (lesson 03). A feature's label is a hypothesis about what it
# does, and steering is how it is tested.
#
# ## Several concepts and seeds: SNMF, DiffMeans, an SAE and random
#
# One concept and one fit cannot rank methods. We repeat the steering for each of the six relations
# (the concept is the relation's answers, the steered prompts are 10 held-out prompts of the *other*
# relations), for three seeds (the SNMF and SAE fits, the random direction and the sampled prompts),
# every direction matched to KL 1.0 within 1 %. Besides SNMF and DiffMeans, a **sparse autoencoder**:
# the unsupervised method the SNMF paper compares against, here a small one (`kit.analysis.sae`,
# 40 latents, trained in seconds on the same activations); its latent that fires most selectively on a
# relation's last prompt tokens gives its direction (the decoder column), picked as for SNMF.

# %%
fits = {"SNMF": [snmf(col.acts, 40, n_iter=60, seed=s, progress=False) for s in range(3)],
        "SAE": [train_sae(col.acts, 40, seed=s) for s in range(3)]}
print(fits["SAE"][0])
matched = lesson.matched_kl_comparison(model, world, col, prompts, fits, target_kl=1.0, rtol=0.01)
Markdown(matched.table())

# %%
# NBVAL_CHECK_OUTPUT
print("every run matched to KL 1.0 within 1%:", all(bool(((k - 1.0).abs() <= 0.01).all()) for k in matched.kl.values()))
for a, b in (("SNMF", "DiffMeans"), ("SNMF", "SAE"), ("SNMF", "random (sparse)"), ("DiffMeans", "random (sparse)")):
    mean, sd, n = matched.difference(a, b)
    print(f"{a} - {b}: {mean:+.2f} ± {sd:.2f} over {n} (concept, seed) pairs -> {matched.verdict(a, b)}")

# %% [markdown]
# Read the verdicts, not the means: a mean difference smaller than its 95 % interval (2 standard
# deviations over √n) is a **tie**, whatever its sign. The full-corpus study of `docs/snmf.md` (every
# layer, all 4,320 sentences, one seed, KL 0.5) agrees in spirit: on purity, plain NMF of the clipped
# activations is as pure as SNMF or purer in layers 0-2; on steering, DiffMeans is ahead of the SNMF
# feature in layer 1, and in layer 3 a random direction beats the SNMF feature. SNMF's features are
# interpretable and steer far better than chance, but on this small model they do not beat the
# simple baselines.
#
# ## Purity and the feature hierarchy, SNMF against an SAE
#
# The SNMF paper also reports a **hierarchy**: related concepts reuse neuron combinations. On our
# world, relations about a country (capital, language, continent, currency) are related to each other
# more than to relations about a person (birthplace, profession). So if features share neurons
# hierarchically, the directions `z` of two country relations' features should overlap (|cosine|)
# more than a country relation's and a person relation's. Both measures over the three seeds:

# %%
# NBVAL_CHECK_OUTPUT
for method, runs in fits.items():
    pur = torch.tensor([float(label_purity(f.Y, labels).purity.mean()) for f in runs])
    overlap = torch.tensor([lesson.feature_overlap(f, model, col, prompts, world) for f in runs])  # [seed, 2]
    print(f"{method}: mean purity {float(pur.mean()):.2f} ± {float(pur.std()):.2f}; |cos| between relation "
          f"features within a subject type {float(overlap[:, 0].mean()):.2f} ± {float(overlap[:, 0].std()):.2f}, "
          f"across types {float(overlap[:, 1].mean()):.2f} ± {float(overlap[:, 1].std()):.2f}")
print(f"single neurons: mean purity {cmp.mean('single neurons'):.2f}; chance {cmp.chance:.2f}")

# %% [markdown]
# On purity, the SAE and SNMF are level within their spread over seeds, both above single neurons and
# far above chance. On the hierarchy, this measure does **not** show one here: the features of two
# relations about the same kind of subject overlap *less* than those of relations about different
# kinds, for both methods. At the last prompt token of layer 0 what these features pick up is the
# template's wording, and related relations do not share it more. A hierarchy, if `facts-4l` has
# one, would need another measure or another place (the subject's tokens, later layers): a finding
# of the paper on large models is a hypothesis to test on a small one, not a given.

# %% [markdown]
# ## Exercise 4: find the scale yourself
#
# Find an `α` at which steering with the DiffMeans direction `dm` gives a mean KL of `TARGET_KL` (0.5
# without a student id; within 10%) on `steer_prompts`. `steer_mlp(model, steer_prompts, LAYER, dm, alpha, pos=-1).logits` gives the
# steered logits; compare each prompt's last-token distribution with the clean one
# (`model.trace(steer_prompts, capture=[])`, last token at `tr.lengths[b] - 1`). Bracket, then bisect.

# %%
TARGET_KL = lesson.exercise_target_kl()  # yours: 0.5 without a student id
print(f"target KL: {TARGET_KL}")
answer_4 = ...  # a float: the scale alpha

lesson.check_steering_scale(answer_4, model, steer_prompts, LAYER, dm, target_kl=TARGET_KL)

# %% [markdown]
# ## Optional: the same on GPT-2 small and Pythia-160M (needs internet)
#
# The lesson's steps on two real models, in a middle layer's MLP (3072 neurons): decode neurons through
# the unembedding, find the neuron that rises most on a concept (here: sentences about money), look for
# a polysemantic neuron, factor the activations with SNMF and compare the label purity of features,
# neurons, NMF and chance, then steer toward the concept at matched KL with the SNMF feature, DiffMeans
# and a random direction. Sentences of four topics stand in for the world's labelled facts.
#
# What is published to compare with:
# - **Neurons as key-value memories** (Geva et al. 2021, *Transformer Feed-Forward Layers Are Key-Value
#   Memories*) and **promoting concepts in the vocabulary space** (Geva et al. 2022, *Transformer
#   Feed-Forward Layers Build Predictions by Promoting Concepts in the Vocabulary Space*, on GPT-2;
#   which size, to check). Gurnee et al. (2024, *Universal Neurons in GPT2 Language Models*) catalogue
#   GPT-2 neuron families; Gurnee et al. (2023, *Finding Neurons in a Haystack*) probe neurons in the
#   Pythia models and find polysemantic ones (superposition), most in early layers.
# - **SNMF** (*Decomposing MLP Activations into Interpretable Features via Semi-Nonnegative Matrix
#   Factorization*): its features beat sparse autoencoders and DiffMeans at causal steering on GPT-2,
#   Llama 3.1 and Gemma 2. Measure it yourself below: a handful of sentences is far less data than the
#   paper's, so a tie or a loss here says little about their claim.
#
# The first cell loads both models (about 500 MB and 300 MB, once). Offline it prints one "Skipped" line
# and the cells after it do nothing.

# %%
# NBVAL_SKIP
from kit.analysis import diff_means
from kit.lessons.real import label, real_models

real = real_models()  # {hub id: model} for GPT-2 small and Pythia-160M: whatever could be loaded
g_topics = {
    "animals": ["The cat sat on the mat and purred.", "My dog chased the ball across the park.",
                "The bird sang in the tree.", "A fish swam under the boat.", "The horse ran across the field.",
                "The cow ate grass in the barn."],
    "money": ["She paid ten dollars for it.", "The price rose by five euros.", "They bought bread for three pounds.",
              "The ticket cost twenty dollars.", "He saved money in the bank.", "The rent is nine hundred euros."],
    "places": ["Paris is the capital of France.", "Tokyo is a large city in Japan.", "Berlin is in Germany.",
               "Madrid is the capital of Spain.", "Rome is an old city in Italy.", "London is on the river."],
    "code": ["He wrote the code in Python.", "She debugged the Java program.", "He compiled the code again.",
             "The function returns a list.", "The program crashed with an error.", "She fixed the bug in the loop."],
}
g_texts = [t for texts in g_topics.values() for t in texts]
g_topic_of = [i for i, texts in enumerate(g_topics.values()) for _ in texts]  # topic index of each text
g_money = list(g_topics).index("money")
g_steer = ["I went to the park and saw a", "The weather today is very", "My favourite food is",
           "He opened the door and found a"]
g_concept = [" dollars", " euros", " pounds", " money", " price"]

# %%
# NBVAL_SKIP
g_results = {}
for name, m in real.items():
    g_layer = m.n_layers // 2
    col_m = mlp_activations(m, g_texts, g_layer)  # acts[d_mlp, n_tokens]
    labels_m = torch.tensor([g_topic_of[int(p)] for p in col_m.prompt])  # [n_tokens]: each token's topic
    mask_m = labels_m == g_money
    dec_m = decode_neurons(m, k=8, layers=[g_layer])
    neuron_m = lesson.concept_neuron(col_m.acts, mask_m)
    print(f"{label(name)}, layer {g_layer} ({m.d_mlp} neurons, {col_m.n_tokens} tokens):")
    print(f"  the money neuron {neuron_m} promotes {dec_m.tokens(0, neuron_m)}")
    for ex in top_activating(m, g_texts, g_layer, neuron_m, k=3):
        print(f"    {ex['activation']:6.2f}  {ex['context']!r}")
    poly_m = lesson.polysemantic_neuron(col_m.acts, labels_m)
    print(f"  a polysemantic neuron, {poly_m}: purity "
          f"{float(label_purity(col_m.acts[poly_m][None], labels_m).purity[0]):.2f}, promotes {dec_m.tokens(0, poly_m)}")
    cmp_m = compare_purity(col_m.acts, labels_m, k=8, n_iter=60)
    print("  mean purity:", {unit: round(cmp_m.mean(unit), 2) for unit in cmp_m.purity}, f"chance {cmp_m.chance:.2f}")
    g_results[name] = (g_layer, col_m, mask_m, cmp_m.snmf)

# %%
# NBVAL_SKIP
for name, m in real.items():
    g_layer, col_m, mask_m, res_m = g_results[name]
    feature_m = lesson.pick_feature(res_m.Y, mask_m)
    print(f"{label(name)}: SNMF feature {feature_m} fires on",
          [col_m.context(int(i), 3, 0) for i in res_m.top_tokens(feature_m, 4)],
          "and writes", decode_direction(m, g_layer, res_m.Z[:, feature_m], 5))
    directions = {"SNMF feature": res_m.Z[:, feature_m], "DiffMeans": diff_means(col_m.acts, mask_m),
                  "random (as sparse as z)": random_sparse_like(res_m.Z[:, feature_m])}
    steering_m = compare_steering(m, g_steer, g_layer, directions, target_kl=0.5, concept=g_concept, pos=-1)
    for method, r in steering_m.items():
        print(f"  {method}: log-prob of the money words rises by {r.gain:+.2f} (KL {r.kl:.3f}, matched {r.matched})")

# %% [markdown]
# ## Summary
#
# - A neuron writes one direction (its decoded tokens) and fires on some tokens; neurons are often
#   polysemantic, with top tokens of several unrelated kinds.
# - SNMF factors a layer's activations into sparse, signed combinations of neurons that fire together;
#   the table above compares their label purity with single neurons, plain NMF and chance.
# - At matched KL, over six concepts and three seeds, the printed verdicts say which differences are
#   real and which are ties; `docs/snmf.md` finds the same on the full corpus: SNMF is interpretable
#   and far better than chance, and not better than NMF on purity or DiffMeans on steering here.
# - The layer-0 feature found "for currency" at the last prompt token is a relation feature: steering
#   a capital prompt with it makes the model name the subject's own currency.
# - A small SAE trained on the same activations is the unsupervised baseline; related relations'
#   features overlap as printed above (the hierarchy question), measured over seeds.
#
# **Next**: go back to lesson 03 with a feature in hand. In the feature-mode `NeuronProbe` above,
# clamp the feature to 0 on a currency prompt and watch p(answer): does the recall pipeline of
# lesson 03 still find the currency without it? Then try the optional GPT-2 sections when you are online.
