"""Tokenise label texts for paper mode with the ``tokenizers`` library alone (no torch, no transformers).

``tokenizer.json`` holds the whole pipeline (normaliser, pre-tokeniser, model, added tokens) and its
post-processor adds the special tokens (BERT ``[CLS] ... [SEP]``, Llama's BOS) when
``add_special_tokens=True``. transformers (5.x) uses that post-processor as is - it drops
``add_bos_token``/``add_eos_token`` from ``tokenizer_config.json`` whenever a ``tokenizer.json`` exists; 4.x
rebuilt it from those flags, which gives the same template for hub Llama checkpoints (TinyLlama: BOS in
both). The one thing transformers layers on top is reproduced here: padding and truncation stored in the
file are switched off (its default call pads and truncates nothing; MiniLM's file pads every text to 128).

Without a ``tokenizer.json`` (slow-only tokenizers) ``load_text_tokenizer`` falls back to transformers'
``AutoTokenizer``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class TextTokenizer(Protocol):
    """What the label embedder needs from a tokenizer."""

    def encode_batch(self, texts: list[str], add_special_tokens: bool) -> list[list[int]]: ...

    def __len__(self) -> int: ...

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]: ...


class FastTokenizer:
    """A ``tokenizers.Tokenizer`` loaded from ``tokenizer.json``, padding and truncation off."""

    def __init__(self, tokenizer_json: Path) -> None:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tokenizer_json))
        tok.no_padding()
        tok.no_truncation()
        self._tok = tok

    def encode_batch(self, texts: list[str], add_special_tokens: bool) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=add_special_tokens)]

    def __len__(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [self._tok.id_to_token(i) for i in ids]


class HFTokenizer:
    """Adapter over a transformers tokenizer (slow-only tokenizers, hidden-state modes)."""

    def __init__(self, ref: str | Path) -> None:
        from transformers import AutoTokenizer

        self.hf = AutoTokenizer.from_pretrained(str(ref))

    def encode_batch(self, texts: list[str], add_special_tokens: bool) -> list[list[int]]:
        return self.hf(list(texts), add_special_tokens=add_special_tokens)["input_ids"]

    def __len__(self) -> int:
        return len(self.hf)

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return self.hf.convert_ids_to_tokens(ids)


def _tokenizer_json(ref: str) -> Path | None:
    """``tokenizer.json`` of a local dir, or of a hub repo (local HF cache first, then a download)."""
    local = Path(ref).expanduser()
    if local.is_dir():
        return local / "tokenizer.json" if (local / "tokenizer.json").is_file() else None
    if ref.startswith((".", "/", "~")):
        raise FileNotFoundError(f"tokenizer directory {ref!r} does not exist")
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(ref, "tokenizer.json"))
    except Exception:  # noqa: BLE001 - no such file, or offline without a cache: try transformers
        return None


def load_text_tokenizer(ref: str | Path, *, fast_only: bool = True) -> TextTokenizer:
    """The tokenizer at ``ref`` (dir or hub id): ``tokenizers`` when it has a tokenizer.json.

    ``fast_only=False`` always uses transformers (hidden-state modes, which run transformers anyway).
    Errors tell the user to set ``tokenizer:`` in the backbone spec.
    """
    try:
        path = _tokenizer_json(str(ref)) if fast_only else None
        return FastTokenizer(path) if path is not None else HFTokenizer(ref)
    except (OSError, ValueError) as exc:
        raise RuntimeError(
            f"no tokenizer at {str(ref)!r} ({exc}); set `tokenizer:` to a hub id or directory that has one"
        ) from exc
