"""Label embeddings in a language backbone's space: the paper's static-table mean, or hidden-state pooling.

Paper mode (TinyEmo §III-B, "text embeddings obtained by embedding the textual labels through the LLM"; the
reference code, REFERENCE_NOTES): tokenise WITH the tokenizer's special tokens (Llama adds BOS), look the ids
up in the static input-embedding table, average the rows (padding contributes nothing), L2-normalise. Only the
embedding matrix is read; the model is never instantiated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tinyemo_core.encoders.backbones import (
    MINILM_PACKAGE,
    TOKENIZER_FILES,
    package_model_dir,
    random_spec_config,
    resolve_model_dir,
)
from tinyemo_core.encoders.embedding_table import embedding_identity, load_embedding_table
from tinyemo_core.encoders.hashing import files_identity, hash_json
from tinyemo_core.encoders.specs import BackboneSpec

# Bump when the (spec, text) -> vector computation changes.
CODE_VERSION = "labels-1"
_HIDDEN_BATCH = 32


def backbone_fingerprint(spec: BackboneSpec, model_dir: Path | None = None) -> str:
    """Hash of everything that fixes the label vectors, without loading any weights.

    Hub ids: id + revision (pin a commit for reproducibility; "main" moves). Local dirs and the MiniLM
    package: tokenizer/config file hashes plus, in paper mode, the hash of the embedding tensor's bytes only
    (the rest of the checkpoint cannot change the output), and in hidden modes the full weight files.
    ``random:``: its build config, seed and the transformers version that initialised it.
    """
    src = spec.source
    ident: dict = {"source": src, "revision": spec.revision, "tokenizer": spec.tokenizer}
    if src.startswith("random:"):
        import transformers

        ident["random"] = {"config": random_spec_config(spec), "seed": 0,
                           "transformers": ".".join(transformers.__version__.split(".")[:2])}
    else:
        root = model_dir
        if root is None and src.startswith("package:"):
            root = package_model_dir(src.split(":", 1)[1])
        elif root is None and Path(src).expanduser().is_dir():
            root = Path(src).expanduser()
        if root is not None:
            ident["files"] = files_identity([root / n for n in (*TOKENIZER_FILES, "config.json")], full=True)
            if spec.mode == "static_mean":
                ident["embedding"] = embedding_identity(root)
            else:
                weights = [*root.glob("*.safetensors"), *root.glob("*.bin")]
                ident["weights"] = files_identity(weights, full=True)
    payload = {"ident": ident, "mode": spec.mode, "layer": spec.layer if spec.mode != "static_mean" else None,
               "special": spec.add_special_tokens, "code": CODE_VERSION}
    return hash_json(payload)[:16]


def _l2(x: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(x.float(), dim=-1).numpy().astype(np.float32)


class LabelEmbedder:
    """Embeds label strings into a backbone's space; float32, L2-normalised rows."""

    def __init__(self, spec: BackboneSpec, model_dir: Path) -> None:
        from transformers import AutoTokenizer

        self.spec = spec
        self.model_dir = model_dir
        tok_ref = spec.tokenizer or str(model_dir)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(tok_ref)
        except (OSError, ValueError) as exc:
            raise RuntimeError(
                f"no tokenizer for backbone {spec.source!r} at {tok_ref!r} ({exc}); set `tokenizer:` to a "
                "hub id or directory that has one"
            ) from exc
        self.fingerprint = backbone_fingerprint(spec, model_dir)
        self._model = None
        if spec.mode == "static_mean":
            self._table = load_embedding_table(model_dir)  # stored dtype; rows are cast after the gather
            self.dim = int(self._table.shape[1])
        else:
            from transformers import AutoModel

            self._model = AutoModel.from_pretrained(model_dir, dtype=torch.float32).eval()
            self.dim = int(self._model.config.hidden_size)
            if self.tokenizer.pad_token is None:
                self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
            self.tokenizer.padding_side = "right"

    def _ids(self, texts: list[str]) -> list[list[int]]:
        ids = self.tokenizer(list(texts), add_special_tokens=self.spec.add_special_tokens)["input_ids"]
        empty = [t for t, i in zip(texts, ids, strict=True) if not i]
        if empty:
            raise ValueError(f"label texts tokenise to nothing: {empty[:5]}")
        return ids

    def embed(self, texts: list[str]) -> np.ndarray:
        """(N, dim) float32, each row L2-normalised."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        if self.spec.mode == "static_mean":
            return self._static_mean(self._ids(texts))
        return np.concatenate([self._hidden(texts[i:i + _HIDDEN_BATCH])
                               for i in range(0, len(texts), _HIDDEN_BATCH)])

    def _static_mean(self, ids: list[list[int]]) -> np.ndarray:
        flat = torch.tensor([t for seq in ids for t in seq], dtype=torch.long)
        if int(flat.max()) >= self._table.shape[0]:
            raise ValueError(f"token id {int(flat.max())} outside the embedding table "
                             f"({self._table.shape[0]} rows): tokenizer and checkpoint do not match")
        seg = torch.repeat_interleave(torch.arange(len(ids)), torch.tensor([len(s) for s in ids]))
        rows = self._table[flat].float()
        sums = torch.zeros(len(ids), self.dim, dtype=torch.float32).index_add_(0, seg, rows)
        counts = torch.tensor([len(s) for s in ids], dtype=torch.float32)[:, None]
        return _l2(sums / counts)

    def _hidden(self, texts: list[str]) -> np.ndarray:
        self._ids(texts)  # same emptiness check
        enc = self.tokenizer(list(texts), add_special_tokens=self.spec.add_special_tokens, padding=True,
                             return_tensors="pt")
        with torch.inference_mode():
            out = self._model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                              output_hidden_states=True)
        h = out.hidden_states[self.spec.layer]  # (N, T, dim); index 0 = the embedding output
        mask = enc["attention_mask"].to(h.dtype)
        if self.spec.mode == "hidden_mean":
            pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        else:  # hidden_last: the last real token (right padding)
            pooled = h[torch.arange(h.shape[0]), enc["attention_mask"].sum(1) - 1]
        return _l2(pooled)

    def vocabulary(self) -> list[str]:
        """Token strings for ids 0..n-1 (n = rows shared by the tokenizer and the embedding table)."""
        n = len(self.tokenizer)
        if self._model is None:
            n = min(n, int(self._table.shape[0]))
        return self.tokenizer.convert_ids_to_tokens(list(range(n)))

    def embed_vocabulary(self) -> np.ndarray:
        """Each vocabulary token's own embedding row, L2-normalised (the paper's 32,000-token table, §IV-G).

        Paper mode only: a token is its static row (no special tokens). Hidden modes raise.
        """
        if self._model is not None:
            raise ValueError("the whole-vocabulary table is defined for mode static_mean only")
        return _l2(self._table[: len(self.vocabulary())])


def load_label_embedder(spec: BackboneSpec, cache_dir: Path) -> LabelEmbedder:
    """Resolve the backbone (package / random build under ``cache_dir`` / local dir / hub) and load it."""
    return LabelEmbedder(spec, resolve_model_dir(spec, Path(cache_dir)))


__all__ = ["CODE_VERSION", "MINILM_PACKAGE", "LabelEmbedder", "backbone_fingerprint", "load_label_embedder"]
