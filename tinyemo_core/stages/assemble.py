"""Join manifests, feature stores and the label table into arrays for training and evaluation.

Joint multi-taxonomy training (TinyEmo §IV-A, docs/projector.md): ONE shared label-id space in which the
same (word, template) is the same id across datasets, so batches mix taxonomies; each dataset keeps its own
candidate set for scoring.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from tinyemo_core.config import DatasetSpec
from tinyemo_core.data.taxonomy import SYNONYMS
from tinyemo_core.store.features import FeatureStore
from tinyemo_core.store.labels import LabelTable
from tinyemo_core.store.manifests import read_manifest


@dataclass
class DatasetSplit:
    """One dataset's rows of one split: ids, features (possibly fp16 memory-mapped), labels, candidates."""

    name: str
    image_ids: list[str]
    features: np.ndarray
    labels: list[str]
    candidates: list[str]
    label_lists: list[list[str]] | None = None  # every label of each row (multi-label datasets, e.g. EMOTIC)

    @property
    def multi_label(self) -> bool:
        return bool(self.label_lists) and any(len(x) > 1 for x in self.label_lists)


def load_split(name: str, manifest: Path, store: FeatureStore, split: str | tuple[str, ...],
               memmap_dir: Path | None = None) -> DatasetSplit:
    """Rows of ``split`` that decoded and have features; candidates = the dataset's own label set (all
    splits). ``memmap_dir``: the features become an ``np.memmap`` file there (datasets over the memory
    cap, docs/stores.md), never materialised in RAM."""
    table = read_manifest(manifest, ok_only=True)
    lists = table["labels"].to_pylist() if "labels" in table.column_names else None
    candidates = sorted(set(table["label"].to_pylist()).union(*(lists or [])))
    splits = (split,) if isinstance(split, str) else split
    table = table.filter(pc.is_in(table["split"], pc.cast(list(splits), "string")))
    ids = table["image_id"].to_pylist()
    out = None if memmap_dir is None else Path(memmap_dir) / f"{name}-{'+'.join(splits)}.npy"
    _, feats = store.load(ids, memmap_to=out)
    lists = table["labels"].to_pylist() if lists is not None else None
    return DatasetSplit(name, ids, feats, table["label"].to_pylist(), candidates, lists)


def features_scratch(out_dir: Path, stores: list[FeatureStore], memory_cap_mb: int | None
                     ) -> Path | None:
    """``<out_dir>/.features`` when the stores' vectors exceed ``memory_cap_mb`` (else None: load in RAM)."""
    if memory_cap_mb is None or sum(s.nbytes() for s in stores) <= memory_cap_mb * 2**20:
        return None
    folder = Path(out_dir) / ".features"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


EVERY_SPLIT = ("train", "val", "test")


def eval_splits(spec: DatasetSpec, role: str) -> tuple[str, ...]:
    """The splits a dataset is scored on: held-in -> its test split; zero-shot -> every split (never trained
    on, the default) or its test split when ``zero_shot_split: test`` (docs/projector.md, "Evaluation")."""
    if role == "zero_shot" and spec.zero_shot_split == "all":
        return EVERY_SPLIT
    return ("test",)


def label_ids(table: LabelTable, words: list[str], template: str) -> np.ndarray:
    index = table.index()
    missing = sorted({w for w in words if (w, template) not in index})
    if missing:
        raise KeyError(
            f"labels {missing} with template {template!r} are not in the label table; rerun embed-labels"
        )
    return np.array([index[(w, template)] for w in words], dtype=np.int64)


def _concat_rows(blocks: list[np.ndarray], memmap_to: Path | None, chunk: int = 65_536) -> np.ndarray:
    """``np.concatenate``, or the same rows streamed into an ``np.memmap`` file ``chunk`` rows at a time."""
    if memmap_to is None or not blocks:
        return np.concatenate(blocks) if blocks else np.zeros((0, 0))
    if len(blocks) == 1 and isinstance(blocks[0], np.memmap):
        return blocks[0]
    shape = (sum(len(b) for b in blocks), blocks[0].shape[1])
    out = np.lib.format.open_memmap(memmap_to, mode="w+", dtype=blocks[0].dtype, shape=shape)
    at = 0
    for block in blocks:
        for start in range(0, len(block), chunk):
            rows = block[start: start + chunk]
            out[at: at + len(rows)] = rows
            at += len(rows)
    out.flush()
    return out


def joint_arrays(parts: list[DatasetSplit], specs: dict[str, DatasetSpec], table: LabelTable,
                 memmap_to: Path | None = None):
    """Concatenate datasets into (features, label_ids, group_ids, group_candidates) in the shared id space
    (``memmap_to``: the features as an ``np.memmap`` file there)."""
    feats = _concat_rows([p.features for p in parts], memmap_to)
    ids = np.concatenate([label_ids(table, p.labels, specs[p.name].template) for p in parts])
    groups = np.concatenate([np.full(len(p.labels), g, dtype=np.int64) for g, p in enumerate(parts)])
    candidates = [label_ids(table, p.candidates, specs[p.name].template) for p in parts]
    return feats, ids, groups, candidates


def synonym_rows(parts: list[DatasetSplit], specs: dict[str, DatasetSpec]) -> np.ndarray:
    """Bool per joint row (the order of :func:`joint_arrays`): True for rows of datasets with
    ``synonyms: true``. Only those rows may take a synonym text (TinyEmo Appendix C: WEBEmo only)."""
    if not parts:
        return np.zeros(0, dtype=bool)
    return np.concatenate([np.full(len(p.labels), specs[p.name].synonyms, dtype=bool) for p in parts])


def synonym_map(table: LabelTable, specs: dict[str, DatasetSpec]) -> dict[int, list[int]]:
    """Label id -> ids of its Appendix C synonyms (same template), for datasets with ``synonyms: true``.

    The map only says which texts a label may be swapped for; :func:`synonym_rows` says which rows may be
    swapped, and the swapped row keeps its class id (``projector/losses.py``)."""
    index = table.index()
    out: dict[int, list[int]] = {}
    for spec in specs.values():
        if not spec.synonyms:
            continue
        for word, syns in SYNONYMS.items():
            if (word, spec.template) in index:
                ids = [index[(s, spec.template)] for s in syns if (s, spec.template) in index]
                if ids:
                    out[index[(word, spec.template)]] = ids
    return out
