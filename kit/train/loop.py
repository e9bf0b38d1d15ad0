"""The seeded training loop: AdamW, linear warm-up then cosine decay, per-step metrics.

``train(model, data, config)`` draws every batch from ``data(batch_size,
generator)`` with a ``torch.Generator`` seeded by ``config.seed`` (on the CPU,
so the data do not depend on the device), trains ``model`` in place and returns
a ``TrainLog`` with, per step, the training loss, the learning rate and the mean
loss of every token group the batches name (``loss_repeated``, ...), plus the
probes' values every ``probe_every`` steps. Given the same seed, thread count
and initial weights, two runs on the CPU are identical; with a
``Checkpointer`` the state is saved every N steps, and a run resumed from a
checkpoint ends with the same weights as one that was never interrupted
(see ``kit.train.checkpoint``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from kit.models import pick_device  # one device rule for loading and training
from kit.train.batch import Batch
from kit.train.checkpoint import Checkpointer
from kit.train.history import HistoryRecorder
from kit.train.log import TrainLog

__all__ = ["TrainConfig", "lr_at", "pick_device", "token_losses", "train"]

DataFn = Callable[[int, torch.Generator], Batch]
Probe = Callable[[torch.nn.Module], float]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one run (all plain numbers, so the config prints and serialises)."""

    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1  # the cosine decays from lr to lr * min_lr_ratio
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.98
    grad_clip: float | None = 1.0
    seed: int = 0
    device: str = "auto"
    probe_every: int = 10
    progress: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate at 0-based ``step``: linear warm-up to ``lr``, then cosine to ``lr * min_lr_ratio``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def token_losses(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Cross-entropy of every target: ``loss[batch, pos]`` (position 0, never a target, is 0)."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits  # [batch, pos, vocab]
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().transpose(1, 2), batch.input_ids[:, 1:], reduction="none"
    )  # [batch, pos-1]
    return torch.nn.functional.pad(loss, (1, 0))


def _fingerprint(model: torch.nn.Module, config: TrainConfig, description: str) -> dict:
    """What must agree for a checkpoint to continue this run: the config (less the progress bar),
    the run's name and the parameter shapes."""
    cfg = {k: v for k, v in config.to_dict().items() if k != "progress"}
    shapes = {n: list(p.shape) for n, p in model.named_parameters()}
    return json.loads(json.dumps({"config": cfg, "run": description, "parameters": shapes}))


def _masked_mean(loss: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (loss * mask).sum() / mask.sum().clamp_min(1)


def train(
    model: torch.nn.Module,
    data: DataFn,
    config: TrainConfig,
    probes: Mapping[str, Probe] | None = None,
    description: str = "training",
    checkpoint: Checkpointer | None = None,
    history: HistoryRecorder | None = None,
) -> TrainLog:
    """Train ``model`` in place on batches from ``data``; return the per-step log.

    ``probes`` maps a metric name to a function of the model (called in eval
    mode under ``torch.no_grad``) measured at step 1, every ``probe_every``
    steps and at the last step. A ``KeyboardInterrupt`` propagates unchanged
    (the caller writes nothing; see ``kit.train.save``).
    ``checkpoint``: save the full state every ``checkpoint.every`` steps and at the end; with
    ``checkpoint.resume``, first continue from its latest checkpoint (if any).
    ``history``: a ``kit.train.history.HistoryRecorder`` that snapshots the model before the first step
    and whenever it is due (its time counts as probe time; it draws no random numbers from the run's
    generator, so the run is the same with or without it). A resumed run records from its checkpoint on
    (``history.history.meta["resumed_at_step"]``).
    """
    device = pick_device(config.device)
    model.to(device).train()
    generator = torch.Generator().manual_seed(config.seed)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "wte" not in n and "wpe" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "wte" not in n and "wpe" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(config.beta1, config.beta2),
    )
    log = TrainLog(meta={"config": config.to_dict(), "device": str(device)})
    probes = dict(probes or {})
    probe_time, done, before_s, before_cpu = 0.0, 0, 0.0, 0.0
    fingerprint = _fingerprint(model, config, description)
    if checkpoint is not None and checkpoint.resume:
        info = checkpoint.load(model, optimizer, generator, fingerprint)
        if info is not None:
            done, log.rows = info["step"], info["rows"]
            probe_time, before_s, before_cpu = info["probe_time_s"], info["wall_time_s"], info["cpu_time_s"]
            log.meta["resumed_at_step"] = done
    start, cpu_start = time.perf_counter() - before_s, time.process_time() - before_cpu

    def snapshot(step: int) -> float:
        t0 = time.perf_counter()
        model.eval()
        history.record(step, model, config.steps)
        model.train()
        return time.perf_counter() - t0

    if history is not None and done == 0:
        probe_time += snapshot(0)
    elif history is not None:  # resumed: the snapshots before the checkpoint are not in it
        history.history.meta["resumed_at_step"] = done
    bar = tqdm(range(done, config.steps), desc=description, disable=not config.progress, mininterval=0.5,
               initial=done, total=config.steps)
    for step in bar:
        lr = lr_at(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = data(config.batch_size, generator).to(device)
        per_token = token_losses(model, batch)  # [batch, pos]
        loss = _masked_mean(per_token, batch.loss_mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()

        row = {"step": step + 1, "loss": float(loss.detach()), "lr": lr}
        with torch.no_grad():
            for name, mask in batch.groups.items():
                row[f"loss_{name}"] = float(_masked_mean(per_token, mask))
        if probes and (step == 0 or (step + 1) % config.probe_every == 0 or step + 1 == config.steps):
            t0 = time.perf_counter()
            model.eval()
            with torch.no_grad():
                row.update({name: float(fn(model)) for name, fn in probes.items()})
            model.train()
            probe_time += time.perf_counter() - t0
        log.append(row)
        if history is not None and history.due(step + 1, config.steps):
            probe_time += snapshot(step + 1)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{row['loss']:.3f}")
        if checkpoint is not None and checkpoint.due(step + 1, config.steps):
            checkpoint.save(step + 1, model, optimizer, generator, {
                "fingerprint": fingerprint, "rows": log.rows, "probe_time_s": probe_time,
                "wall_time_s": time.perf_counter() - start, "cpu_time_s": time.process_time() - cpu_start})
    model.eval()
    log.wall_time_s = time.perf_counter() - start
    log.meta["cpu_time_s"] = time.process_time() - cpu_start
    log.meta["threads"] = torch.get_num_threads()
    log.probe_time_s = probe_time
    return log
