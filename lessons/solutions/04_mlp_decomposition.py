# Solutions of lesson 04 (MLP decomposition). Load into the notebook with `%load solutions/04_mlp_decomposition.py`
# after the cells that define `model`, `col`, `labels`, `res`, `dm`, `LAYER`, `steer_prompts` and the student's
# own instances `feature_2`, `mask_3` and `TARGET_KL` (the lesson's feature, concept mask and 0.5 without a
# student id).
import torch

from kit.analysis import steer_mlp


# Exercise 1: a neuron's output row, through the final norm's weight and the unembedding.
def decode(layer: int, neuron: int, k: int) -> list[str]:
    w_out = model.adapter.W_out(layer)[neuron].detach().float()  # [d_model]
    logits = (w_out * model.adapter.final_norm.weight.detach().float()) @ model.adapter.W_U.detach().float()
    return model.to_str_tokens(logits.topk(k).indices)


# Exercise 2: the share of the feature's 20 top tokens that carry its most common label.
def purity(scores: torch.Tensor, labels: torch.Tensor, top: int = 20) -> float:
    top_labels = labels[scores.topk(top).indices]
    top_labels = top_labels[top_labels >= 0]
    return float(top_labels.bincount().max()) / top if len(top_labels) else 0.0


answer_2 = purity(res.Y[feature_2], labels)

# Exercise 3: DiffMeans, the concept's mean activation minus the others'.
answer_3 = col.acts[:, mask_3].mean(1) - col.acts[:, ~mask_3].mean(1)


# Exercise 4: bracket the target KL by doubling, then bisect.
def kl_at(alpha: float, direction: torch.Tensor, prompts: list[str], layer: int) -> float:
    clean = model.trace(prompts, capture=[])
    steered = steer_mlp(model, prompts, layer, direction, alpha, pos=-1)
    rows, last = torch.arange(len(prompts)), torch.tensor(clean.lengths) - 1
    p = clean.logits[rows, last].log_softmax(-1)
    q = steered.logits[rows, last].log_softmax(-1)
    return float((p.exp() * (p - q)).sum(-1).mean())


def scale_for_kl(target: float, direction: torch.Tensor, prompts: list[str], layer: int) -> float:
    lo, hi = 0.0, 1.0
    while kl_at(hi, direction, prompts, layer) < target:
        lo, hi = hi, hi * 2
    for _ in range(30):
        mid = (lo + hi) / 2
        kl = kl_at(mid, direction, prompts, layer)
        if abs(kl - target) <= 0.02 * target:
            return mid
        lo, hi = (mid, hi) if kl < target else (lo, mid)
    return (lo + hi) / 2


answer_4 = scale_for_kl(TARGET_KL, dm, steer_prompts, LAYER)
