# Solutions to the exercises of lesson 01 (attention and the residual stream), with the names the
# exercise cells use. In the lesson: `%load solutions/01_attention_and_the_residual_stream.py`.

import kit
from kit.analysis import contrast_attribution, logit_lens
from kit.lessons.attention import exercise_person, relation_competitors
from kit.train import load_world


# Exercise 1.1: the residual stream after block `layer` is the embeddings plus every block's outputs
def residual_after(tr, layer):
    """The residual stream after block `layer`: [batch, pos, d_model]."""
    resid = tr["resid_pre", 0]  # the embeddings (token + position)
    for l in range(layer + 1):
        resid = resid + tr["attn_out", l] + tr["mlp_out", l]
    return resid


# Exercise 1.2: fix the query at the last token, take the argmax over the keys
def most_attended(tr, layer, head):
    """The key position the last token attends to most in this head (an int)."""
    pattern = tr["pattern", layer]  # [batch, head, query, key]
    return int(pattern[0, head, -1].argmax())


# Exercises 1.3 and 1.4 are about one prompt of facts-4l: the student's own person (world.people[0]
# without a student id)
_model = kit.load("facts-4l", device="cpu")
_world = load_world()
_person = exercise_person(_model, _world)
_prompt, _answer = f"{_person['name']} works as a", " " + _person["profession"]
_tr = _model.trace(_prompt)

# Exercise 1.3: the first layer whose logit lens ranks the answer top-1 (rank 0)
_ranks = logit_lens(_tr, k=1, target=_answer).target_rank[:, 0, -1]  # [layer]
first_top1_layer = next(layer for layer, rank in enumerate(_ranks.tolist()) if rank == 0)

# Exercise 1.4: the largest direct effect on the logit difference against the other professions,
# among the embeddings, every head and every MLP
_others = relation_competitors(_model, _world, "profession", _answer)
_att = contrast_attribution(_tr, [_answer], [_others])
_effects = {"embed": float(_att.embed[0])}
for _l in range(_model.n_layers):
    _effects.update({f"L{_l}H{_h}": float(_att.heads[0, _l, _h]) for _h in range(_model.n_heads)})
    _effects[f"MLP{_l}"] = float(_att.mlps[0, _l])
top_component = max(_effects, key=_effects.get)
print("first_top1_layer =", first_top1_layer, "| top_component =", repr(top_component))
