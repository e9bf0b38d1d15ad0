"""The ``ioi-3l`` recipe: indirect-object identification with invented names.

A 3-layer GPT-2 (``GPT2LMHeadModel``: d_model 64, 4 heads, MLP width 64,
context 24, untied unembedding) trained on ``IOITask`` (see
``kit.train.ioi_data``): "When A and B went to the store , B gave a drink to"
-> A. The loss counts only the answer token. ``measure_ioi`` returns the figures
of the model card: accuracy and logit difference on training and held-out
templates, and per-head attention and ablation figures from which the card
names each head's role.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

from kit.train.checkpoint import Checkpointer
from kit.train.ioi_data import HELD_OUT_TEMPLATES, TEMPLATES, IOITask, ioi_names, ioi_vocabulary
from kit.train.loop import TrainConfig
from kit.train.recipe import Recipe, gpt2_model
from kit.train.result import TrainResult
from kit.train.tokenizers import SPECIAL_TOKENS, word_tokenizer

__all__ = [
    "EVAL_SETTINGS", "IOIRecipe", "build_ioi_model", "eval_prompts", "head_figures", "ioi_task", "ioi_tokenizer",
    "measure_ioi", "train_ioi",
]


@dataclass(frozen=True)
class IOIRecipe(Recipe):
    """Every choice that defines ``ioi-3l`` (the defaults are the shipped model's)."""

    n_layers: int = 3
    d_model: int = 64
    n_heads: int = 4
    d_mlp: int = 64
    n_ctx: int = 24
    n_names: int = 24
    names_seed: int = 0
    init_std: float = 0.07
    embed_std: float = 1.0
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=1000, batch_size=64, lr=3e-3, warmup_steps=50, min_lr_ratio=0.1,
        weight_decay=0.01, beta1=0.9, beta2=0.98, grad_clip=1.0, seed=0, probe_every=25,
    ))

    def names(self) -> list[str]:
        """The invented names the model knows."""
        return ioi_names(self.n_names, self.names_seed)


def ioi_tokenizer(recipe: IOIRecipe) -> PreTrainedTokenizerFast:
    """Word-level tokenizer: special tokens, then the names, then the template words."""
    return word_tokenizer(ioi_vocabulary(recipe.names()), model_max_length=recipe.n_ctx)


def build_ioi_model(recipe: IOIRecipe) -> GPT2LMHeadModel:
    """A freshly initialised model, seeded by ``recipe.train.seed``."""
    return gpt2_model(vocab_size=len(ioi_vocabulary(recipe.names())) + len(SPECIAL_TOKENS), n_ctx=recipe.n_ctx,
                      d_model=recipe.d_model, n_layers=recipe.n_layers, n_heads=recipe.n_heads, d_mlp=recipe.d_mlp,
                      init_std=recipe.init_std, seed=recipe.train.seed, tied=False, embed_std=recipe.embed_std)


def ioi_task(recipe: IOIRecipe, templates: tuple[str, ...] = TEMPLATES) -> IOITask:
    """The data set: ``task.batch(n, generator)`` draws ``n`` training sequences."""
    tok = ioi_tokenizer(recipe)
    return IOITask(recipe.names(), tok.get_vocab(), templates)


@torch.no_grad()
def _accuracy_probe(task: IOITask, n: int = 256, seed: int = 1):
    batch = task.batch(n, torch.Generator().manual_seed(seed))

    def probe(model: torch.nn.Module) -> float:
        ids = batch.input_ids.to(next(model.parameters()).device)
        logits = model(input_ids=ids).logits[:, :-1]  # predicts input_ids[:, 1:]
        target = batch.loss_mask[:, 1:].to(ids.device)
        return float((logits.argmax(-1) == ids[:, 1:])[target].float().mean())
    return probe


def train_ioi(recipe: IOIRecipe = IOIRecipe(), progress: bool | None = None,
              checkpoint: Checkpointer | None = None) -> TrainResult:
    """Train the recipe's model from scratch; the log probes answer accuracy on training templates
    (``acc_train``) and on held-out templates (``acc_held_out``) every ``probe_every`` steps."""
    probes = {"acc_train": _accuracy_probe(ioi_task(recipe)),
              "acc_held_out": _accuracy_probe(ioi_task(recipe, HELD_OUT_TEMPLATES))}
    return recipe.fit(build_ioi_model(recipe), ioi_task(recipe).batch, ioi_tokenizer(recipe),
                      f"ioi-{recipe.n_layers}l", probes, progress, checkpoint)


# --- measuring the shipped weights (GPT-2 only: the recipe builds a GPT2LMHeadModel) ---

EVAL_SETTINGS = {"n_prompts": 256, "seed": 1000, "head_prompts": 64, "head_template": 0, "adverbs": 1,
                 "adjectives": 1}


def _ids(tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    return enc["input_ids"], enc["attention_mask"]


@torch.no_grad()
def _answer_figures(model, tokenizer, prompts) -> dict[str, float]:
    """Top-1 accuracy of the IO name and the mean logit difference IO - S at each prompt's last token."""
    ids, mask = _ids(tokenizer, [p.text for p in prompts])
    logits = model(input_ids=ids, attention_mask=mask).logits
    last = logits[torch.arange(len(prompts)), mask.sum(1) - 1]  # [batch, vocab]
    io = torch.tensor(tokenizer.convert_tokens_to_ids([p.io for p in prompts]))
    s = torch.tensor(tokenizer.convert_tokens_to_ids([p.s for p in prompts]))
    rows = torch.arange(len(prompts))
    return {"accuracy": float((last.argmax(-1) == io).float().mean()),
            "logit_diff": float((last[rows, io] - last[rows, s]).mean())}


def _positions(tokenizer, prompts) -> dict[str, torch.Tensor]:
    """Positions ``[batch]`` of IO, S1, S2 and END in one-template prompts (``<|bos|>`` is position 0)."""
    toks = [tokenizer.tokenize(p.text) for p in prompts]
    first = lambda t, w: 1 + t.index(w)  # noqa: E731
    return {"IO": torch.tensor([first(t, p.io) for t, p in zip(toks, prompts)]),
            "S1": torch.tensor([first(t, p.s) for t, p in zip(toks, prompts)]),
            "S2": torch.tensor([1 + len(t) - 1 - t[::-1].index(p.s) for t, p in zip(toks, prompts)]),
            "END": torch.tensor([len(t) for t in toks])}


def _head_inputs(model, ids, edit=None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run ``model``; return its logits and each layer's input of ``attn.c_proj`` (``z[batch, pos, d_model]``,
    heads side by side). ``edit(layer, z) -> z`` may replace that input."""
    store, handles = [], []
    for layer, block in enumerate(model.transformer.h):
        def hook(module, args, layer=layer):
            z = args[0] if edit is None else edit(layer, args[0])
            store.append(z.detach())
            return (z,)
        handles.append(block.attn.c_proj.register_forward_pre_hook(hook))
    try:
        logits = model(input_ids=ids).logits
    finally:
        for h in handles:
            h.remove()
    return logits, store


@torch.no_grad()
def head_figures(model, tokenizer, prompts) -> dict[str, list[list[float]]]:
    """Per head ``[layer][head]``, on one-template prompts: mean attention END->IO, END->S1, END->S2 and S2->S1,
    and ``patch_restores``: the fraction of the logit difference IO - S that patching the head's clean output
    (at every position) into the run of the corrupted "ABC" prompts brings back (0: none, 1: all)."""
    from kit.train.metrics import eager_attention

    ids, _ = _ids(tokenizer, [p.text for p in prompts])
    bad, _ = _ids(tokenizer, [p.corrupted for p in prompts])
    pos = _positions(tokenizer, prompts)
    rows = torch.arange(len(prompts))
    with eager_attention(model):
        att = torch.stack(model(input_ids=ids, output_attentions=True).attentions, 1)  # [batch, layer, head, q, k]
    fig = {f"attn_{q}_{k}": att[rows, :, :, pos[q], pos[k]].mean(0).tolist()
           for q, k in (("END", "IO"), ("END", "S1"), ("END", "S2"), ("S2", "S1"))}
    io = torch.tensor(tokenizer.convert_tokens_to_ids([p.io for p in prompts]))
    s = torch.tensor(tokenizer.convert_tokens_to_ids([p.s for p in prompts]))
    diff = lambda logits: float((logits[rows, -1, io] - logits[rows, -1, s]).mean())  # noqa: E731
    clean_logits, clean_z = _head_inputs(model, ids)
    bad_logits, _ = _head_inputs(model, bad)
    clean, corrupt = diff(clean_logits), diff(bad_logits)
    L, H = model.config.n_layer, model.config.n_head
    d = model.config.n_embd // H
    restores = torch.zeros(L, H)
    for layer in range(L):
        for head in range(H):
            def edit(l, z, layer=layer, head=head):
                if l != layer:
                    return z
                z = z.clone()
                z[..., head * d:(head + 1) * d] = clean_z[layer][..., head * d:(head + 1) * d]
                return z
            restores[layer, head] = (diff(_head_inputs(model, bad, edit)[0]) - corrupt) / (clean - corrupt)
    fig["patch_restores"] = restores.tolist()
    fig["logit_diff_clean"], fig["logit_diff_corrupted"] = clean, corrupt
    return fig


def eval_prompts(recipe: IOIRecipe, split: str = "train", n: int | None = None):
    """The prompts ``measure_ioi`` scores: ``split`` ``"train"`` / ``"held_out"`` templates (mixed lengths), or
    ``"heads"`` (one training template, one adverb, one adjective: equal lengths, for per-head figures)."""
    from kit.train.ioi_data import ioi_prompts

    s = EVAL_SETTINGS
    if split == "heads":
        return ioi_prompts(recipe.names(), n or s["head_prompts"], seed=s["seed"],
                           templates=TEMPLATES[s["head_template"]], adverbs=s["adverbs"], adjectives=s["adjectives"])
    if split not in ("train", "held_out"):
        raise ValueError(f"split={split!r}; valid: 'train', 'held_out', 'heads'")
    templates = TEMPLATES if split == "train" else HELD_OUT_TEMPLATES
    return ioi_prompts(recipe.names(), n or s["n_prompts"], seed=s["seed"], templates=templates)


def measure_ioi(model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, recipe: IOIRecipe = IOIRecipe()) -> dict:
    """The figures of the model card, measured on ``model`` (eval mode, CPU)."""
    model.eval()
    out = {}
    for split in ("train", "held_out"):
        for k, v in _answer_figures(model, tokenizer, eval_prompts(recipe, split)).items():
            out[f"{k}_{split}"] = v
    out["heads"] = head_figures(model, tokenizer, eval_prompts(recipe, "heads"))
    return out
