"""Label-embedding stage: the label texts of a profile -> a label table (+ FAISS index) per backbone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyemo_core.config import DatasetSpec
from tinyemo_core.data.taxonomy import SYNONYMS
from tinyemo_core.encoders.fingerprints import backbone_fingerprint as fp
from tinyemo_core.encoders.labels import load_label_embedder
from tinyemo_core.encoders.specs import BackboneSpec
from tinyemo_core.store.labels import (
    LabelStore,
    LabelTable,
    label_set_fingerprint,
    label_table_path,
    label_table_summary,
    render,
    vocabulary_table_path,
    write_label_table,
)
from tinyemo_core.store.manifests import read_manifest
from tinyemo_core.store.models import ModelsStore
from tinyemo_core.store.plan import StorePlan


def dataset_labels(manifest: Path) -> list[str]:
    """Sorted label words of a dataset's decodable rows (every word of multi-label rows)."""
    table = read_manifest(manifest, ok_only=True)
    words = set(table["label"].to_pylist())
    if "labels" in table.column_names:
        for row in table["labels"].to_pylist():
            words.update(row or [])
    return sorted(w for w in words if w)


def synonym_words(label: str) -> list[str]:
    return list(SYNONYMS.get(label, []))


def label_pairs(datasets: dict[str, DatasetSpec], manifests: dict[str, str]) -> list[tuple[str, str]]:
    """All (label word, template) pairs a profile needs: each dataset's labels, plus synonyms where
    enabled."""
    pairs: set[tuple[str, str]] = set()
    for name, spec in datasets.items():
        for word in dataset_labels(Path(manifests[name])):
            pairs.add((word, spec.template))
            if spec.synonyms:
                pairs.update((syn, spec.template) for syn in synonym_words(word))
    return sorted(pairs)


def backbone_fingerprint(spec: BackboneSpec) -> str:
    return fp(spec)


def embed_labels(
    spec: BackboneSpec, backbone_name: str, pairs: list[tuple[str, str]], storage_root: Path, fingerprint: str
) -> dict[str, Any]:
    """Embed every (label, template) text with the backbone unless the table already exists."""
    set_fp = label_set_fingerprint(fingerprint, pairs)
    path = label_table_path(storage_root, backbone_name, set_fp)
    if (summary := label_table_summary(path)) is not None:
        return {"table": str(path), "fingerprint": set_fp, "computed": False, **summary}

    embedder = load_label_embedder(spec, ModelsStore(storage_root).root)
    texts = [render(tpl, word) for word, tpl in pairs]
    table = LabelTable([w for w, _ in pairs], [t for _, t in pairs], texts, embedder.embed(texts))
    meta = {"backbone": backbone_name, "backbone_fingerprint": fingerprint, "fingerprint": set_fp}
    summary = write_indexed_table(path, table, meta)
    return {"table": str(path), "fingerprint": set_fp, "computed": True, **summary}


def write_indexed_table(path: Path, table: LabelTable, meta: dict[str, Any]) -> dict[str, Any]:
    """A FAISS index over the table's vectors (``.faiss``), then the table with its summary written last."""
    from tinyemo_core.index.faiss_index import build_index, save_index

    index, index_info = build_index(table.vectors)
    save_index(index, path.with_suffix(".faiss"))
    return write_label_table(path, table, {**meta, "index": index_info})


def plan(spec: BackboneSpec, backbone_name: str, pairs: list[tuple[str, str]],
         storage_root: Path, backbone_fp: str | None = None) -> StorePlan:
    """The label table for ``pairs`` embedded by the backbone: label-set fingerprint, path, complete
    (``backbone_fp``: the backbone's fingerprint when the caller has it already)."""
    set_fp = label_set_fingerprint(backbone_fp or backbone_fingerprint(spec), pairs)
    return LabelStore(storage_root).plan(backbone_name, set_fp)


def plan_vocabulary(spec: BackboneSpec, backbone_name: str, storage_root: Path) -> StorePlan:
    """The backbone's whole-vocabulary table: fingerprint, path, complete."""
    return LabelStore(storage_root).plan_vocabulary(backbone_name, backbone_fingerprint(spec))


def embed_vocabulary(
    spec: BackboneSpec, backbone_name: str, storage_root: Path, fingerprint: str
) -> dict[str, Any]:
    """The backbone's whole tokenizer vocabulary as a label table + FAISS index (paper §IV-G: nearest tokens
    to a projected image), in paper mode: each token's own static embedding row."""
    path = vocabulary_table_path(storage_root, backbone_name, fingerprint)
    if (summary := label_table_summary(path)) is not None:
        return {"table": str(path), "computed": False, **summary}

    embedder = load_label_embedder(spec, ModelsStore(storage_root).root)
    tokens = embedder.vocabulary()
    table = LabelTable(tokens, ["<vocabulary>"] * len(tokens), tokens, embedder.embed_vocabulary())
    meta = {"backbone": backbone_name, "backbone_fingerprint": fingerprint}
    summary = write_indexed_table(path, table, meta)
    return {"table": str(path), "computed": True, **summary}
