# Solutions of lesson 06 (superposition and sparse dictionaries). Load into the notebook with
# `%load solutions/06_superposition_and_dictionaries.py` after the cells that define `sae`, `rel_mask`.
import torch



# Exercise 6.1: ||W_i||^2 / sum_j (W_i/||W_i|| . W_j)^2, the sum over every j (i included).
def dimensionality(W: torch.Tensor) -> torch.Tensor:
    norms = W.norm(dim=0)  # [feature]
    overlaps = (W / norms).T @ W  # [feature, feature]: row i is W_i/||W_i|| . W_j
    return norms ** 2 / (overlaps ** 2).sum(1)


# Exercise 6.2: explained variance around the mean over tokens, and active latents per token.
def stats(target: torch.Tensor, prediction: torch.Tensor, latents: torch.Tensor) -> tuple[float, float]:
    err = ((target - prediction) ** 2).sum()
    var = ((target - target.mean(1, keepdim=True)) ** 2).sum()
    return float(1 - err / var), float((latents > 0).sum(0).float().mean())


# Exercise 6.3: the feature whose 20 strongest tokens fall most often in the relation's mask.
def relation_feature(sae, mask: torch.Tensor) -> int:
    top = sae.Y.topk(20, dim=1).indices  # [k, 20]: each feature's strongest tokens
    return int(mask[top].float().mean(1).argmax())


# Exercise 6.4: replace the feature's term f z of the reconstruction by value * z, keep the rest of x.
def clamp(x: torch.Tensor, sae, feature: int, value: float) -> torch.Tensor:
    f = sae.encode(x)[feature]  # [n_tokens]
    z = sae.Z[:, feature]  # [d_mlp]
    return x + z[:, None] * (value - f)[None]


if "sae" in globals() and "rel_mask" in globals():
    answer_3 = relation_feature(sae, rel_mask)  # noqa: F821
