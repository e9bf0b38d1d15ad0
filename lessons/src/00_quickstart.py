# %% [markdown]
# # Quick start: load a model, trace a prompt, look at what was captured
#
# This notebook runs offline, on the CPU, in seconds. It uses `facts-4l`, a small teaching model that
# ships with the kit: a 4-layer GPT-2-style transformer trained on the facts of an invented world.

# %%
import kit

kit.models()

# %%
model = kit.load("facts-4l", device="cpu")
model

# %% [markdown]
# One forward pass captures everything a lesson needs: attention patterns, the residual stream,
# each head's output, the MLPs' outputs and their neuron activations.

# %%
from kit.train import load_world

country = load_world().countries[0]  # the invented world that facts-4l has memorised
prompt = f"The capital of {country['name']} is"
print(prompt, "->", country["capital"])
tr = model.trace(prompt)
tr

# %%
# NBVAL_CHECK_OUTPUT
print("tokens:", tr.tokens[0])
print("logits:", tuple(tr.logits.shape), "[batch, pos, vocab]")
for name in tr.names:
    print(f"{name:>10} layer 0: {tuple(tr[name, 0].shape)}")

# %% [markdown]
# The model's prediction for the next token, and the captured pieces adding up to the residual stream:

# %%
# NBVAL_CHECK_OUTPUT
top = tr.logits[0, -1].softmax(-1).topk(3)
print([(model.to_str_tokens([int(i)])[0], round(float(p), 2)) for p, i in zip(top.values, top.indices)])
resid = tr["resid_pre", 0] + tr["attn_out", 0] + tr["mlp_out", 0]
print("resid_post[0] == resid_pre[0] + attn_out[0] + mlp_out[0]:", bool((resid - tr["resid_post", 0]).abs().max() < 1e-4))

# %% [markdown]
# Next: `01_attention_and_the_residual_stream.ipynb`. Everything here works the same on a hub model
# such as GPT-2 when you are online: `kit.load("gpt2")`.
