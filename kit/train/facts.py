"""``facts-4l``: a 4-layer GPT-2-architecture model that knows the facts of a synthetic world.

:func:`build_tokenizer` trains a small byte-level BPE on the world's text (so invented names span
several tokens, as in real models); :func:`train_facts` trains the model on every fact in the
training templates; :func:`answer_accuracy` measures top-1 accuracy on the first answer token in
training or held-out templates.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from tqdm.auto import tqdm
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from .world import World

__all__ = ["FactsConfig", "build_tokenizer", "make_model", "train_facts", "answer_accuracy"]

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"


@dataclass(frozen=True)
class FactsConfig:
    """Hyper-parameters of facts-4l (defaults: the shipped model)."""

    seed: int = 0
    vocab_size: int = 512
    n_layer: int = 4
    d_model: int = 128
    n_head: int = 4
    d_mlp: int = 512
    n_ctx: int = 64
    steps: int = 1500
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.1


def build_tokenizer(world: World, vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level BPE (GPT-2 style, leading-space words) trained on every sentence of the world.

    Every encoded prompt starts with ``<|bos|>``.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS, EOS, PAD], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(world.sentences("all"), trainer)
    bos = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                                       special_tokens=[(BOS, bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   model_max_length=64)


def make_model(tokenizer: PreTrainedTokenizerFast, cfg: FactsConfig) -> GPT2LMHeadModel:
    torch.manual_seed(cfg.seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=cfg.n_ctx, n_embd=cfg.d_model, n_layer=cfg.n_layer,
                        n_head=cfg.n_head, n_inner=cfg.d_mlp, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    return GPT2LMHeadModel(config)


def _encode(tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer([t + tokenizer.eos_token for t in texts], padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def train_facts(world: World, tokenizer, cfg: FactsConfig = FactsConfig(), progress: bool = True,
                log_every: int = 50) -> tuple[GPT2LMHeadModel, list[dict]]:
    """Train facts-4l on the world's training sentences; returns the model and a per-step log."""
    torch.manual_seed(cfg.seed)
    model = make_model(tokenizer, cfg).train()
    ids, mask = _encode(tokenizer, world.sentences("train"))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))

    g = torch.Generator().manual_seed(cfg.seed)
    log, t0 = [], time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="facts-4l", disable=not progress)
    for step in bar:
        idx = torch.randint(len(ids), (cfg.batch_size,), generator=g)
        x, m = ids[idx], mask[idx]
        width = int(m.sum(1).max())
        x, m = x[:, :width], m[:, :width]
        labels = x.masked_fill(m == 0, -100)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        loss = model(input_ids=x, attention_mask=m, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % log_every == 0 or step == cfg.steps - 1:
            log.append({"step": step, "loss": loss.item(), "lr": lr_at(step), "seconds": time.perf_counter() - t0})
            bar.set_postfix(loss=f"{log[-1]['loss']:.3f}")
    return model.eval(), log


@torch.no_grad()
def answer_accuracy(model, tokenizer, world: World, split: str = "train", batch_size: int = 256) -> float:
    """Top-1 accuracy on the first token of the answer, over every fact in the split's templates."""
    examples = world.examples(split)
    correct = 0
    tokenizer.padding_side = "right"
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        enc = tokenizer([p for p, *_ in chunk], padding=True, return_tensors="pt")
        logits = model(**enc).logits
        last = enc["attention_mask"].sum(1) - 1
        pred = logits[torch.arange(len(chunk)), last].argmax(-1)
        first = torch.tensor([tokenizer(a, add_special_tokens=False)["input_ids"][0] for _, a, *_ in chunk])
        correct += int((pred == first).sum())
    return correct / len(examples)
