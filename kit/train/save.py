"""Writing a model directory all at once: nothing half-written survives an interruption.

``atomic_directory(target)`` yields a temporary sibling directory
(``.<name>.<random>.partial``); only when the block finishes without an
exception is it renamed to ``target`` (a rename within one file system is
atomic). On any exception, ``KeyboardInterrupt`` included, the temporary
directory is deleted and ``target`` is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast

from kit.train.tokenizers import save_tokenizer

__all__ = ["PARTIAL_SUFFIX", "atomic_directory", "rewrite_card", "save_model_dir"]

PARTIAL_SUFFIX = ".partial"


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary directory that becomes ``target`` when the block succeeds.

    Raises ``FileExistsError`` up front if ``target`` exists and ``overwrite`` is
    false. With ``overwrite``, the old directory is replaced only after the new
    one is complete.
    """
    target = Path(target).absolute()
    if target.exists() and not overwrite:
        raise FileExistsError(f"{str(target)!r} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=PARTIAL_SUFFIX, dir=target.parent))
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary directory
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def save_model_dir(
    target: str | os.PathLike,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerFast,
    files: Mapping[str, str | bytes | Callable[[Path], None]] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a Hugging Face model directory atomically and return its path.

    Contents: ``config.json``, ``generation_config.json``, ``model.safetensors``
    (never pickle), ``tokenizer.json``, ``tokenizer_config.json``, and
    ``files``: name -> text, bytes, or a function that writes into the
    (temporary) directory it is given.
    """
    with atomic_directory(target, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        save_tokenizer(tokenizer, tmp)
        for name, content in (files or {}).items():
            if callable(content):
                content(tmp)
            elif isinstance(content, bytes):
                (tmp / name).write_bytes(content)
            else:
                (tmp / name).write_text(content)
        pickles = [p.name for p in tmp.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt")]
        if pickles:
            raise RuntimeError(f"refusing to ship pickle files: {pickles}")
    return Path(target)


def rewrite_card(directory: str | os.PathLike) -> Path:
    """Re-render ``MODEL_CARD.md`` from the directory's ``figures.json`` (after a change of the card's wording)."""
    import json

    from kit.train.card import render_card

    directory = Path(directory)
    text = render_card(json.loads((directory / "figures.json").read_text()))
    tmp = directory / ".MODEL_CARD.md.partial"
    tmp.write_text(text)
    os.replace(tmp, directory / "MODEL_CARD.md")
    return directory / "MODEL_CARD.md"
