"""Loading models: shipped teaching models, local Hugging Face directories, and hub ids.

``kit.load(name_or_path)`` returns a :class:`Model`: the real ``transformers`` model (``.hf``), its
tokenizer, an architecture adapter, the model's dimensions, and ``.trace(...)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from .arch import Adapter, adapter_for
from .interventions import Intervention
from .names import hint
from .trace import Trace, run_trace

__all__ = ["Model", "load", "models", "ZOO_DIR"]

ZOO_DIR = Path(__file__).parent / "zoo"
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def models() -> list[str]:
    """Names of the teaching models shipped with the kit (folders of ``kit/zoo`` with a config)."""
    if not ZOO_DIR.is_dir():
        return []
    return sorted(p.name for p in ZOO_DIR.iterdir() if (p / "config.json").is_file())


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks cuda, then mps, then cpu; anything else is passed to ``torch.device``."""
    if str(device) != "auto":
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from err
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was asked for but CUDA is not available here; use 'cpu' or 'auto'")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class Model:
    """A causal LM ready for tracing.

    Attributes: ``hf`` (the ``transformers`` model), ``tokenizer``, ``device``, ``name``,
    ``family`` ("gpt2" | "gpt_neox" | "llama"), ``adapter`` (module access), and the dimensions
    ``n_layers, n_heads, n_kv_heads, d_head, d_model, d_mlp, n_ctx, vocab_size``.
    """

    def __init__(self, hf: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, name: str = ""):
        self.hf = hf.eval()
        self.tokenizer = tokenizer
        self.name = name or getattr(hf.config, "_name_or_path", "") or type(hf).__name__
        self.adapter: Adapter = adapter_for(hf)
        a = self.adapter
        self.family = a.family.name
        self.n_layers, self.n_heads, self.n_kv_heads = a.n_layers, a.n_heads, a.n_kv_heads
        self.d_head, self.d_model, self.d_mlp = a.d_head, a.d_model, a.d_mlp
        self.n_ctx, self.vocab_size = a.n_ctx, a.vocab_size
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token or tokenizer.convert_ids_to_tokens(0)
        tokenizer.padding_side = "right"

    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    def __repr__(self) -> str:
        return (f"Model({self.name!r}, family={self.family}, n_layers={self.n_layers}, n_heads={self.n_heads}, "
                f"d_model={self.d_model}, d_mlp={self.d_mlp}, n_ctx={self.n_ctx}, vocab_size={self.vocab_size}, "
                f"device={self.device})")

    # tokens ------------------------------------------------------------------------------------
    def tokenize(self, prompts: str | Sequence[str] | torch.Tensor | Sequence[Sequence[int]]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts to ``(input_ids[batch, pos], mask[batch, pos])`` on the model's device.

        Accepts a string, a list of strings, token ids as a tensor ``[pos]`` / ``[batch, pos]``, or a
        list of id lists. Raises ``ValueError`` for an empty prompt or one longer than ``n_ctx``.
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        if isinstance(prompts, torch.Tensor):
            ids = prompts.long()
            if ids.ndim == 1:
                ids = ids[None]
            if ids.ndim != 2 or ids.numel() == 0:
                raise ValueError(f"token ids must be a non-empty tensor [pos] or [batch, pos], got shape {list(prompts.shape)}")
            mask = torch.ones_like(ids, dtype=torch.bool)
        else:
            prompts = list(prompts)
            if not prompts:
                raise ValueError("no prompts given: pass a string or a non-empty list of strings")
            if all(isinstance(p, str) for p in prompts):
                for i, p in enumerate(prompts):
                    if not p.strip():
                        raise ValueError(f"prompt {i} is empty or only whitespace; give some text to trace")
                try:
                    enc = self.tokenizer(prompts, padding=True, return_tensors="pt")
                except Exception as err:  # e.g. a word-level vocabulary without an unknown token
                    raise ValueError(_cannot_encode(self.tokenizer, prompts, err)) from err
                ids, mask = enc["input_ids"], enc["attention_mask"].bool()
                if ids.shape[1] == 0 or (mask.sum(1) == 0).any():
                    raise ValueError("a prompt produced no tokens; give some text to trace")
            elif all(isinstance(p, (list, tuple)) for p in prompts):
                if any(len(p) == 0 for p in prompts):
                    raise ValueError("an id list is empty; each prompt needs at least one token")
                T = max(len(p) for p in prompts)
                ids = torch.full((len(prompts), T), self.tokenizer.pad_token_id, dtype=torch.long)
                mask = torch.zeros(len(prompts), T, dtype=torch.bool)
                for i, p in enumerate(prompts):
                    ids[i, : len(p)] = torch.tensor(p, dtype=torch.long)
                    mask[i, : len(p)] = True
            else:
                raise ValueError("prompts must be a string, a list of strings, a tensor of ids or a list of id lists")
        longest = int(mask.sum(1).max())
        if longest > self.n_ctx:
            raise ValueError(f"prompt is {longest} tokens long, but this model's context is n_ctx={self.n_ctx} tokens")
        if ids.min() < 0 or ids.max() >= self.vocab_size:
            raise ValueError(f"token ids must lie in 0..{self.vocab_size - 1}")
        return ids.to(self.device), mask.to(self.device)

    def to_tokens(self, prompt: str) -> torch.Tensor:
        """Token ids ``[pos]`` of one prompt, as the tracer sees them."""
        ids, _ = self.tokenize(prompt)
        return ids[0]

    def to_str_tokens(self, ids: str | torch.Tensor | Sequence[int]) -> list[str]:
        """Each token's text (a prompt is tokenized first)."""
        if isinstance(ids, str):
            ids = self.to_tokens(ids)
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return self.tokenizer.batch_decode([[i] for i in ids], clean_up_tokenization_spaces=False)

    # tracing -----------------------------------------------------------------------------------
    def trace(self, prompts, capture: Sequence[str] | str | None = None, layers: int | Sequence[int] | None = None,
              interventions: Intervention | Sequence[Intervention] = (), grad: bool = False,
              max_bytes: int | None = None) -> Trace:
        """Run one forward pass and capture activations (see :mod:`kit.names`).

        ``prompts``: a string, a list of strings (padded on the right), or token ids.
        ``capture``: names to keep (default: all of them; ``[]`` keeps only logits).
        ``layers``: layers to capture (default: all).
        ``interventions``: :class:`kit.Ablate`, :class:`kit.Patch`, :class:`kit.Clamp`,
        :class:`kit.Steer`, :class:`kit.Knockout` or :class:`kit.Edit`, applied during the pass.
        ``grad``: keep the autograd graph (for gradient-based attribution).
        ``max_bytes``: refuse (``MemoryError``, before allocating) a capture larger than this
        (default 4 GiB, or the ``KIT_MAX_TRACE_BYTES`` environment variable).
        """
        input_ids, mask = self.tokenize(prompts)
        return run_trace(self.adapter, input_ids, mask, decode=self.to_str_tokens, capture=capture, layers=layers,
                         interventions=interventions, grad=grad, max_bytes=max_bytes, owner=self)

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        """Final norm and unembedding of residual vectors ``[..., d_model]`` -> logits ``[..., vocab]``."""
        with torch.no_grad():
            return self.hf.get_output_embeddings()(self.adapter.final_norm(resid.to(self.device)))


def _check_local_dir(path: Path) -> None:
    if not path.is_dir():
        raise FileNotFoundError(f"{str(path)!r} is not a directory; pass a Hugging Face model directory, "
                                f"a hub id, or a shipped model: {models()}")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{str(path)!r} is not a Hugging Face model directory: it has no config.json "
                                f"(shipped models: {models()})")
    files = [p.name for p in path.iterdir()]
    if not any(f.endswith(".safetensors") for f in files):
        pickles = [f for f in files if f.endswith(_PICKLE_SUFFIXES)]
        if pickles:
            raise ValueError(f"{str(path)!r} holds only pickle checkpoints ({', '.join(sorted(pickles))}); the kit loads "
                             "safetensors only, since unpickling can run arbitrary code. Convert it with "
                             "model.save_pretrained(dir, safe_serialization=True).")
        raise FileNotFoundError(f"{str(path)!r} has no *.safetensors weights file")


def _from_pretrained(source: str, device: torch.device, dtype: torch.dtype | None, trust_remote_code: bool,
                     revision: str | None) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    kwargs = dict(trust_remote_code=trust_remote_code, revision=revision)
    tok = AutoTokenizer.from_pretrained(source, **kwargs)
    hf = AutoModelForCausalLM.from_pretrained(
        source, use_safetensors=True, dtype=dtype or torch.float32, attn_implementation="sdpa", **kwargs)
    return hf.to(device), tok


def load(name_or_path: str | os.PathLike, device: str | torch.device = "auto", dtype: torch.dtype | None = None,
         trust_remote_code: bool = False, revision: str | None = None) -> Model:
    """Load a model for tracing.

    ``name_or_path``: a shipped teaching model (``kit.models()``), a local Hugging Face directory,
    or a hub id such as ``"gpt2"`` (needs the network or the local hub cache).
    ``device``: ``"auto"`` (cuda, then mps, then cpu) or explicit. ``dtype``: default float32.
    Weights load from safetensors only; ``trust_remote_code`` stays off unless you turn it on.
    """
    dev = pick_device(device)
    name = os.fspath(name_or_path)
    if not name.strip():
        raise ValueError(f"empty model name; shipped models: {models()}")
    shipped = models()
    if name in shipped:
        path = ZOO_DIR / name
    elif Path(name).expanduser().exists():
        path = Path(name).expanduser()
    elif os.path.isabs(name) or name.startswith((".", "~")) or name.count("/") > 1 or os.sep in name.replace("/", ""):
        raise FileNotFoundError(f"no such model directory {name!r}; shipped models: {shipped}{hint(name, shipped)}")
    else:
        path = None
    if path is not None:
        _check_local_dir(path)
        try:
            hf, tok = _from_pretrained(str(path), dev, dtype, trust_remote_code, revision)
        except Exception as err:  # corrupt safetensors, bad config, missing tokenizer, ...
            raise ValueError(f"could not load the model directory {str(path)!r}: {err}") from err
        return Model(hf, tok, name=name if name in shipped else str(path))
    try:
        hf, tok = _from_pretrained(name, dev, dtype, trust_remote_code, revision)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(
            f"could not load {name!r}: it is not a shipped teaching model, not a local directory, and the "
            f"Hugging Face Hub could not provide it (offline and not cached, or no such repository: "
            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}). Shipped models, which work "
            f"offline: {shipped}.{hint(name, shipped)}"
        ) from err
    return Model(hf, tok, name=name)


def _cannot_encode(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], err: Exception) -> str:
    """The message for prompts that ``tokenizer`` refuses: the first word it cannot encode, and a few
    tokens it does know (e.g. the syllables of ``induction-2l``'s word-level vocabulary)."""
    where = "the prompt"
    for i, prompt in enumerate(prompts):
        bad = next((w for w in prompt.split() if not _encodes(tokenizer, w)), None)
        if bad is not None:
            where = f"{bad!r} in prompt {i}" if len(prompts) > 1 else repr(bad)
            break
    special = set(tokenizer.all_special_tokens)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])  # [(token, id)] in id order
    known = [tokenizer.convert_tokens_to_string([t]) for t, _ in vocab if t not in special][:8]
    return (f"this model's tokenizer cannot encode {where} ({err}); its vocabulary has {len(vocab)} tokens, "
            f"for example {', '.join(map(repr, known))}: pass text made of its tokens, or token ids")


def _encodes(tokenizer: PreTrainedTokenizerBase, text: str) -> bool:
    try:
        tokenizer(text, add_special_tokens=False)
    except Exception:
        return False
    return True

