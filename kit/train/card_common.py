"""The parts every model card of the zoo shares: number format, the figures table and the training section.

``kit.train.card`` (``induction-2l``, ``facts-4l``) and ``kit.train.ioi_card`` (``ioi-3l``) build on them.
"""

from __future__ import annotations

__all__ = ["figures_table", "fmt", "training_section"]


def fmt(x: float, digits: int = 3) -> str:
    """``x`` with ``digits`` decimals."""
    return f"{x:.{digits}f}"


def training_section(fig: dict) -> list[str]:
    """The "Training" section: the command that remakes the model, the optimiser, the time it took."""
    t = fig["training"]
    cfg = fig["recipe"]["train"]
    return [
        "## Training",
        "",
        "```bash",
        fig["command"],
        "```",
        "",
        (f"- Seed {cfg['seed']}; {cfg['steps']} steps of batch {cfg['batch_size']}; AdamW (lr {cfg['lr']:g}, "
        f"betas ({cfg['beta1']}, {cfg['beta2']}), weight decay {cfg['weight_decay']} on matrices), "
        f"linear warm-up over {cfg['warmup_steps']} steps then cosine decay to {cfg['min_lr_ratio']:g} x lr, "
        f"gradient clipping at {cfg['grad_clip']}."),
        (f"- Wall time {fmt(t['wall_time_s'], 1)} s (CPU time {fmt(t['cpu_time_s'], 1)} s) on {t['device']} with "
        f"{t['threads']} thread{'s' if t['threads'] > 1 else ''}, on a shared 2-core machine; torch {t['torch']}, transformers {t['transformers']}."),
        ("- The per-step log ships as `training_log.json` "
        "(`kit.train.TrainLog.from_json(path).chart()` draws it)."),
        "",
    ]


def figures_table(rows: list[tuple[str, str, str]]) -> list[str]:
    """A Markdown table of ``(figure, value, measured by)`` rows."""
    out = ["| figure | value | measured by |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return out + [""]
