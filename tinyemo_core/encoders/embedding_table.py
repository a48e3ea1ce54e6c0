"""Read ONLY the static input-embedding matrix of a language-model checkpoint (never builds the model).

TinyEmo embeds labels with the LLM's static token-embedding table (the authors' code), so a 7B backbone costs
one (vocab x hidden) tensor read from its safetensors shard, not 14 GB of weights. safetensors tensors are
memory-mapped with numpy at the offsets the file header gives (little-endian, row-major by the format's
spec), so only the rows a label uses are read and neither torch nor transformers is imported.
safetensors' own ``framework="numpy"`` reader is not used: it copies the whole tensor and numpy has no
bfloat16 (Llama checkpoints are bf16); bf16 rows are widened to float32 by a 16-bit shift (exact).
Legacy ``pytorch_model*.bin`` checkpoints need torch (imported only then).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyemo_core.identity import file_sha256, safetensors_tensor_sha256

# Names of the token-embedding matrix across common architectures (Llama/Mistral/Phi/Qwen: embed_tokens;
# BERT/Bloom: word_embeddings; GPT-2: wte; OpenELM: token_embeddings; GPT-NeoX: embed_in).
EMBEDDING_SUFFIXES = (
    "embed_tokens.weight",
    "word_embeddings.weight",
    "wte.weight",
    "token_embeddings.weight",
    "tok_embeddings.weight",
    "embed_in.weight",
    "token_embedding.weight",
)

def _weight_map(model_dir: Path) -> dict[str, Path]:
    """tensor name -> file holding it, over safetensors (sharded or not), else pytorch .bin checkpoints."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = model_dir / index_name
        if index.is_file():
            wm = json.loads(index.read_text())["weight_map"]
            return {k: model_dir / v for k, v in wm.items()}
    files = sorted(model_dir.glob("*.safetensors")) or sorted(model_dir.glob("pytorch_model*.bin"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors or pytorch_model*.bin weights in {model_dir}")
    out: dict[str, Path] = {}
    for f in files:
        keys = _safetensors_header(f).keys() if f.suffix == ".safetensors" else _bin_state(f).keys()
        out.update({k: f for k in keys if k != "__metadata__"})
    return out


def _safetensors_header(path: Path) -> dict:
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def _bin_state(path: Path) -> dict[str, Any]:
    import torch

    # mmap: only the pages of the tensor we index are read from disk
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def find_embedding_key(keys: list[str]) -> str:
    """The one tensor name that is the token-embedding table; ambiguous or missing -> a clear error."""
    cands = [k for k in keys if k.endswith(EMBEDDING_SUFFIXES) or k.endswith("token_embeddings")]
    if not cands:
        raise KeyError(
            f"no token-embedding tensor found (looked for names ending in {EMBEDDING_SUFFIXES}); "
            f"first keys: {sorted(keys)[:8]}"
        )
    if len(cands) > 1:
        raise KeyError(f"several candidate embedding tensors {cands}; the checkpoint is ambiguous")
    return cands[0]


def locate_embedding(model_dir: Path) -> tuple[str, Path]:
    """(tensor name, file) of the embedding table in ``model_dir``."""
    wm = _weight_map(model_dir)
    key = find_embedding_key(list(wm))
    return key, wm[key]


_NP_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2"}


@dataclass(frozen=True)
class EmbeddingTable:
    """The (vocab, hidden) matrix as stored (memory-mapped; bf16 kept as uint16 bit patterns)."""

    data: np.ndarray
    bf16: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape  # type: ignore[return-value]

    def rows(self, ids: np.ndarray | slice) -> np.ndarray:
        """Rows ``ids`` as float32 (bf16 widened exactly: its bits are the high half of an fp32)."""
        r = np.asarray(self.data[ids])
        if self.bf16:
            return (r.astype(np.uint32) << 16).view(np.float32)
        return r.astype(np.float32)


def read_safetensors_tensor(path: Path, key: str) -> EmbeddingTable:
    """Memory-map one tensor of a safetensors file (F64/F32/F16/BF16) without reading the rest."""
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        meta = json.loads(f.read(n))[key]
    if meta["dtype"] not in _NP_DTYPES:
        raise ValueError(f"{path}: embedding tensor {key!r} has dtype {meta['dtype']}; "
                         f"supported: {sorted(_NP_DTYPES)}")
    start, end = meta["data_offsets"]
    shape = tuple(meta["shape"])
    data = np.memmap(path, dtype=_NP_DTYPES[meta["dtype"]], mode="r", offset=8 + n + start, shape=shape)
    if data.nbytes != end - start:
        raise ValueError(f"{path}: header of {key!r} is inconsistent (shape {shape} vs {end - start} bytes)")
    return EmbeddingTable(data, bf16=meta["dtype"] == "BF16")


def load_embedding_table(model_dir: Path) -> EmbeddingTable:
    """The (vocab, hidden) input-embedding matrix, read lazily from the one file holding it."""
    key, path = locate_embedding(model_dir)
    if path.suffix == ".safetensors":
        return read_safetensors_tensor(path, key)
    return EmbeddingTable(_bin_state(path)[key].float().numpy())


def embedding_identity(model_dir: Path) -> str:
    """sha256 of exactly the embedding tensor's (name, dtype, shape, bytes) in safetensors, or of its name +
    its ``.bin`` file's content hash (both cached across commands by :mod:`tinyemo_core.identity`)."""
    key, path = locate_embedding(model_dir)
    if path.suffix == ".safetensors":
        return safetensors_tensor_sha256(path, key)
    return hashlib.sha256(key.encode() + file_sha256(path).encode()).hexdigest()
