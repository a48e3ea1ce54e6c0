"""Label embeddings in a language backbone's space: the paper's static-table mean, or hidden-state pooling.

Paper mode (TinyEmo §III-B, "text embeddings obtained by embedding the textual labels through the LLM";
the authors' code ggcr/TinyEmo, docs/encoders.md): tokenise WITH the tokenizer's special tokens (Llama adds
BOS, BERT [CLS]/[SEP]), look the ids up in the static input-embedding table, average the rows,
L2-normalise. Only the embedding matrix is read (memory-mapped), tokenisation uses the ``tokenizers``
library: paper mode imports neither torch nor transformers (``random:`` sources are built with them once).
Hidden modes run the model (``labels_hidden``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinyemo_core.encoders.backbones import MINILM_PACKAGE, resolve_model_dir
from tinyemo_core.encoders.embedding_table import load_embedding_table

# Fingerprints live in a torch-free module; re-exported here for compatibility.
from tinyemo_core.encoders.fingerprints import LABELS_CODE_VERSION as CODE_VERSION
from tinyemo_core.encoders.fingerprints import backbone_fingerprint
from tinyemo_core.encoders.specs import BackboneSpec
from tinyemo_core.encoders.tokenization import load_text_tokenizer


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class LabelEmbedder:
    """Embeds label strings into a backbone's space; float32, L2-normalised rows."""

    def __init__(self, spec: BackboneSpec, model_dir: Path) -> None:
        self.spec = spec
        self.model_dir = model_dir
        static = spec.mode == "static_mean"
        self.tokenizer = load_text_tokenizer(spec.tokenizer or model_dir, fast_only=static)
        self.fingerprint = backbone_fingerprint(spec, model_dir)
        self._hidden = None
        if static:
            self._table = load_embedding_table(model_dir)  # memory-mapped, stored dtype
            self.dim = int(self._table.shape[1])
        else:
            from tinyemo_core.encoders.labels_hidden import HiddenStateEmbedder

            self._hidden = HiddenStateEmbedder(spec, model_dir, self.tokenizer)  # type: ignore[arg-type]
            self.dim = self._hidden.dim

    def _ids(self, texts: list[str]) -> list[list[int]]:
        ids = self.tokenizer.encode_batch(list(texts), add_special_tokens=self.spec.add_special_tokens)
        empty = [t for t, i in zip(texts, ids, strict=True) if not i]
        if empty:
            raise ValueError(f"label texts tokenise to nothing: {empty[:5]}")
        return ids

    def embed(self, texts: list[str]) -> np.ndarray:
        """(N, dim) float32, each row L2-normalised."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        ids = self._ids(texts)  # also the emptiness check for hidden modes
        if self._hidden is not None:
            return self._hidden.embed(texts)
        return self._static_mean(ids)

    def _static_mean(self, ids: list[list[int]]) -> np.ndarray:
        flat = np.fromiter((t for seq in ids for t in seq), dtype=np.int64)
        if int(flat.max()) >= self._table.shape[0]:
            raise ValueError(f"token id {int(flat.max())} outside the embedding table "
                             f"({self._table.shape[0]} rows): tokenizer and checkpoint do not match")
        lengths = np.array([len(s) for s in ids])
        seg = np.repeat(np.arange(len(ids)), lengths)
        sums = np.zeros((len(ids), self.dim), np.float64)
        np.add.at(sums, seg, self._table.rows(flat))
        return _l2(sums / lengths[:, None])

    def vocabulary(self) -> list[str]:
        """Token strings for ids 0..n-1 (n = rows shared by the tokenizer and the embedding table)."""
        n = len(self.tokenizer)
        if self._hidden is None:
            n = min(n, int(self._table.shape[0]))
        return self.tokenizer.convert_ids_to_tokens(list(range(n)))

    def embed_vocabulary(self) -> np.ndarray:
        """Each vocabulary token's own embedding row, L2-normalised (the paper's 32,000-token table, §IV-G).

        Paper mode only: a token is its static row (no special tokens). Hidden modes raise.
        """
        if self._hidden is not None:
            raise ValueError("the whole-vocabulary table is defined for mode static_mean only")
        return _l2(self._table.rows(slice(0, len(self.vocabulary()))))


def load_label_embedder(spec: BackboneSpec, cache_dir: Path) -> LabelEmbedder:
    """Resolve the backbone (package / random build under ``cache_dir`` / local dir / hub) and load it."""
    return LabelEmbedder(spec, resolve_model_dir(spec, Path(cache_dir)))


__all__ = ["CODE_VERSION", "MINILM_PACKAGE", "LabelEmbedder", "backbone_fingerprint", "load_label_embedder"]
