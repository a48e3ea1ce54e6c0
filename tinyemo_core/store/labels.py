"""Label-embedding tables: ``labels/<backbone>/<label-set fingerprint>.parquet`` (+ ``.faiss`` + ``.json``).

One row per (text, template) pair: ``label`` (the normalised word), ``template``, ``text`` (the string that
was embedded) and ``vector`` (float32, L2-normalised). The JSON summary is written last and marks completion.

Format 2 (docs/stores.md): ``vector`` is fixed_size_binary(4 * dim), uncompressed, ``dtype``/``dim`` in the
schema metadata (Parquet decodes it ~15x faster than the nested fixed-size-list of format 1, which still
reads).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tinyemo_core.fingerprint import stable_hash, step_fingerprint
from tinyemo_core.provenance import current
from tinyemo_core.store.atomic import read_json, write_json, write_parquet
from tinyemo_core.store.kind import StoreKind, entry
from tinyemo_core.store.plan import StorePlan
from tinyemo_core.store.vectors import binary_vector_array, column_to_numpy, vector_metadata


def render(template: str, label: str) -> str:
    """Fill a label template ("{label}" or "a scene evoking {emotion} to viewers")."""
    return template.replace("{emotion}", label).replace("{label}", label)


@dataclass(frozen=True)
class LabelTable:
    """Embedded label texts, in a fixed order, with a lookup from (label, template) to a row."""

    labels: list[str]
    templates: list[str]
    texts: list[str]
    vectors: np.ndarray

    def index(self) -> dict[tuple[str, str], int]:
        return {(lab, tpl): i for i, (lab, tpl) in enumerate(zip(self.labels, self.templates, strict=True))}


def label_set_fingerprint(backbone_fingerprint: str, pairs: list[tuple[str, str]]) -> str:
    return step_fingerprint("labels", backbone_fingerprint, sorted(set(pairs)))


def label_table_path(store_root: Path, backbone: str, fingerprint: str) -> Path:
    return store_root / "labels" / backbone / f"{fingerprint}.parquet"


def label_table_complete(path: Path) -> bool:
    return path.exists() and read_json(path.with_suffix(".json")) is not None


def write_label_table(path: Path, table: LabelTable, summary: dict) -> dict:
    arrow = pa.table(
        {
            "label": pa.array(table.labels, pa.string()),
            "template": pa.array(table.templates, pa.string()),
            "text": pa.array(table.texts, pa.string()),
            "vector": binary_vector_array(table.vectors, "float32"),
        }
    ).replace_schema_metadata(vector_metadata("float32", table.vectors.shape[1], format=2))
    strings = ["label", "template", "text"]
    write_parquet(path, arrow, compression={**dict.fromkeys(strings, "zstd"), "vector": "none"},
                  use_dictionary=strings)
    summary = {
        **summary,
        "rows": len(table.labels),
        "dim": int(table.vectors.shape[1]),
        "produced_by": current(),
    }
    write_json(path.with_suffix(".json"), summary)
    return summary


def read_label_table(path: Path) -> LabelTable:
    if not label_table_complete(path):
        raise FileNotFoundError(f"label table {path} is incomplete; run embed-labels")
    t = pq.read_table(path, memory_map=True)
    return LabelTable(
        t["label"].to_pylist(),
        t["template"].to_pylist(),
        t["text"].to_pylist(),
        np.array(column_to_numpy(t["vector"], t.schema.metadata), dtype=np.float32),
    )


def label_table_summary(path: Path) -> dict | None:
    """The summary written next to a complete table (its completion marker), or None when incomplete."""
    return read_json(Path(path).with_suffix(".json")) if Path(path).exists() else None


def vocabulary_table_path(store_root: Path, backbone: str, backbone_fingerprint: str) -> Path:
    """The whole-vocabulary table of one backbone (TinyEmo §IV-G token probing)."""
    return label_table_path(store_root, backbone, "vocab-" + stable_hash("vocabulary", backbone_fingerprint))


class LabelStore(StoreKind):
    """Label and vocabulary tables per backbone; the ``.json`` summary next to a table is its marker."""

    kind = "labels"
    folder = "labels"

    def plan(self, backbone: str, fingerprint: str) -> StorePlan:  # type: ignore[override]
        path = label_table_path(self.storage_root, backbone, fingerprint)
        return StorePlan(fingerprint, path, label_table_complete(path))

    def plan_vocabulary(self, backbone: str, backbone_fingerprint: str) -> StorePlan:
        path = vocabulary_table_path(self.storage_root, backbone, backbone_fingerprint)
        return StorePlan(backbone_fingerprint, path, label_table_complete(path))

    def complete(self, path: Path) -> bool:
        return label_table_complete(path)

    def read(self, plan: StorePlan) -> dict | None:
        """The embed-labels descriptor of a complete table (what the stage returns)."""
        summary = label_table_summary(plan.path)
        if summary is None:
            return None
        return {"table": str(plan.path), "fingerprint": plan.fingerprint, "computed": False, **summary}

    def tables(self, backbone: str) -> list[Path]:
        """Every label table file of one backbone (complete or not), sorted."""
        return sorted((self.root / backbone).glob("*.parquet"))

    def entries(self):
        for path in sorted(self.root.glob("*/*.parquet")):
            yield entry(self.kind, path.parent.name, path, read_json(path.with_suffix(".json")), path.stem)
