"""Feature sources: vectors computed elsewhere, read without any image (features-only datasets).

Three kinds (docs/datasets.md, "Features-only datasets"):

- ``pt-tree``: the TinyEmo authors' cache, one ``torch.save``-d tensor per image under
  ``[<prefix>/]<split>/<class>/<name>.pt`` (their ``precompute_features.py`` saves
  ``features[i].detach().cpu()``: a bare 1-D tensor, float16 for CLIP on a GPU). ``validation/`` of
  Emotion6 and FI is a copy of ``test/`` (their loaders pass the test subset as the validation set); it is
  detected and reported, see :func:`resolve_duplicates`.
- ``npy``: an (N, d) float ``.npy`` plus a CSV/Parquet table with one row per matrix row (``name`` or
  ``path``, ``label``, ``split``; an ``image_id`` column matches images that are present instead).
- ``table``: one Parquet/Arrow/Feather table of (``name``, ``label``, ``split``, ``vector``), ``vector`` a
  list or fixed-size list of floats.

**Names and ids.** A row's *name* is the source's own name for the image: for a tree, the path below the
split folder without the extension (``anger/1`` for ``images/test/anger/1.pt``), for tables the ``name`` (or
``path``) column without its extension. Without images its id is :func:`name_id` =
``sha256("<dataset>/<name>")[:32]`` (hex): stable across machines, copies and re-imports. When the images
arrive, ``stages.import_features.rekey_store`` maps names to the image-content ids (SHA-256 of the bytes) and
re-keys the store without recomputing a vector.

Pickles are never executed: ``.pt`` files are read with ``torch.load(weights_only=True)`` and must hold a
tensor; ``.npy`` with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from tinyemo_core.data.ingest import MANIFEST_SCHEMA
from tinyemo_core.data.taxonomy import UnknownLabelError, normalise_label
from tinyemo_core.fingerprint import stable_hash
from tinyemo_core.store.atomic import write_atomic

KINDS = ("pt-tree", "npy", "table")
TABLE_SUFFIXES = (".parquet", ".arrow", ".feather", ".ipc")
SPLIT_WORDS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "dev": "val", "test": "test", "testing": "test"}
EXAMPLES = 5


class FeatureImportError(ValueError):
    """A source that cannot be read; the message names the file or row and what to do."""


class FeatureSourceSpec(BaseModel):
    """``datasets.<d>.features`` in flows.yaml: where the vectors are and which encoder made them."""

    model_config = ConfigDict(extra="forbid")

    path: Path  # a .pt tree folder, a .npy (with ``table``) or a Parquet/Arrow table
    encoder: str  # the flows.yaml encoder that produced them (names the feature store)
    table: Path | None = None  # .npy: its rows table (CSV or Parquet)
    split_file: Path | None = None  # JSON {name: split} or CSV name,split; wins over split folders/columns


def source_kind(path: Path) -> str:
    """``pt-tree`` (a folder), ``npy`` or ``table`` (by suffix); a clear error otherwise."""
    path = Path(path)
    if not path.exists():
        raise FeatureImportError(f"{path}: no such feature source (a folder of .pt files, a .npy or a "
                                 f"Parquet/Arrow table)")
    if path.is_dir():
        return "pt-tree"
    if path.suffix.lower() == ".npy":
        return "npy"
    if path.suffix.lower() in TABLE_SUFFIXES:
        return "table"
    raise FeatureImportError(f"{path}: unknown feature source; expected a folder of "
                             f"<split>/<class>/<name>.pt, a .npy (+ table) or a table "
                             f"({', '.join(TABLE_SUFFIXES)})")


def strip_suffix(rel: str) -> str:
    """A relative path without its extension, POSIX."""
    p = PurePosixPath(rel)
    return str(p.with_suffix("")) if p.suffix else str(p)


def name_id(dataset: str, name: str) -> str:
    """The image id of a features-only row: ``sha256("<dataset>/<name>")``, first 32 hex characters."""
    return hashlib.sha256(f"{dataset}/{name}".encode("utf-8", "surrogateescape")).hexdigest()[:32]


def listing_fingerprint(paths: list[Path]) -> str:
    """Cheap identity of a source (no vector read): relative path, size and mtime of every file."""
    entries: list[Any] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames.sort()
                for fname in sorted(filenames):
                    if fname.endswith(".pt"):
                        st = os.stat(os.path.join(dirpath, fname))
                        entries.append((os.path.relpath(os.path.join(dirpath, fname), p), st.st_size,
                                        st.st_mtime_ns))
        else:
            st = p.stat()
            entries.append((p.name, st.st_size, st.st_mtime_ns))
    return stable_hash(entries, length=32)


@dataclass
class SourceRows:
    """What a source says about its rows, vectors not read: ``refs`` locate each row (a relative ``.pt`` path
    or a table row number), ``names`` are the stable names, ``labels``/``splits`` may be None per row."""

    kind: str
    path: Path
    names: list[str]
    refs: list[Any]
    labels: list[str | None]
    splits: list[str | None]
    table: Path | None = None
    image_ids: list[str] | None = None  # npy/table sources with an image_id column
    report: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    def take(self, keep: list[int]) -> SourceRows:
        ids = None if self.image_ids is None else [self.image_ids[i] for i in keep]
        return SourceRows(self.kind, self.path, [self.names[i] for i in keep], [self.refs[i] for i in keep],
                          [self.labels[i] for i in keep], [self.splits[i] for i in keep], self.table, ids,
                          self.report)


def _pt_files(root: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        out += [os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/")
                for f in sorted(filenames) if f.endswith(".pt")]
    return out


def _tree_rows(root: Path) -> SourceRows:
    rels = _pt_files(root)
    if not rels:
        raise FeatureImportError(f"{root}: no .pt files found; expected [<prefix>/]<split>/<class>/<name>.pt")
    names, labels, splits = [], [], []
    for rel in rels:
        parts = strip_suffix(rel).split("/")
        at = next((i for i, p in enumerate(parts[:-1]) if p.lower() in SPLIT_WORDS), None)
        rest = parts if at is None else parts[at + 1:]
        names.append("/".join(rest))
        splits.append(None if at is None else SPLIT_WORDS[parts[at].lower()])
        labels.append(rest[0] if len(rest) >= 2 else None)
    return SourceRows("pt-tree", root, names, rels, labels, splits)


def _read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            schema = pq.read_schema(path)
            return pq.read_table(path, columns=[c for c in columns if c in schema.names] if columns else None)
        if suffix in (".arrow", ".feather", ".ipc"):
            import pyarrow.feather as feather

            table = feather.read_table(path, memory_map=True)
            return table.select([c for c in columns if c in table.column_names]) if columns else table
        import pyarrow.csv as pacsv

        types = {c: pa.string() for c in ("name", "path", "image_id", "label", "split")}
        return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
    except (pa.ArrowInvalid, OSError) as exc:
        raise FeatureImportError(f"{path}: not a readable table ({exc})") from None


def _table_rows(kind: str, path: Path, table: Path) -> SourceRows:
    rows = _read_table(table, ["name", "path", "image_id", "label", "split"])
    cols = rows.column_names
    key = next((c for c in ("name", "path") if c in cols), None)
    if key is None and "image_id" not in cols:
        raise FeatureImportError(f"{table}: needs a 'name' (or 'path') column, or 'image_id' when the images "
                                 f"are present (has {cols})")
    raw = rows[key].to_pylist() if key else rows["image_id"].to_pylist()
    n = rows.num_rows
    labels = rows["label"].to_pylist() if "label" in cols else [None] * n
    splits = [None if s is None else SPLIT_WORDS.get(str(s).strip().lower(), str(s))
              for s in (rows["split"].to_pylist() if "split" in cols else [None] * n)]
    ids = rows["image_id"].to_pylist() if "image_id" in cols else None
    names = [strip_suffix(str(r)) for r in raw]
    return SourceRows(kind, path, names, list(range(n)), labels, splits, table, ids)


def _apply_split_file(rows: SourceRows, split_file: Path) -> None:
    if split_file.suffix.lower() == ".json":
        mapping = {strip_suffix(k): v for k, v in json.loads(split_file.read_text()).items()}
    else:
        t = _read_table(split_file)
        if not {"name", "split"} <= set(t.column_names):
            raise FeatureImportError(f"{split_file}: a split file needs 'name' and 'split' columns")
        mapping = dict(zip(map(strip_suffix, t["name"].to_pylist()), t["split"].to_pylist(), strict=True))
    for i, name in enumerate(rows.names):
        if name in mapping:
            word = str(mapping[name]).strip().lower()
            if word not in SPLIT_WORDS:
                raise FeatureImportError(f"{split_file}: {name}: unknown split {mapping[name]!r} "
                                         f"(expected one of {sorted(SPLIT_WORDS)})")
            rows.splits[i] = SPLIT_WORDS[word]


def list_source(path: Path, *, table: Path | None = None, split_file: Path | None = None) -> SourceRows:
    """Names, labels and splits of a source (no vector read), validation copies of test resolved."""
    path = Path(path)
    kind = source_kind(path)
    if kind == "pt-tree":
        rows = _tree_rows(path)
    elif kind == "npy":
        if table is None:
            raise FeatureImportError(f"{path}: a .npy source needs its rows table (CSV or Parquet; name, "
                                     "label, split)")
        rows = _table_rows(kind, path, Path(table))
    else:
        rows = _table_rows(kind, path, path)
    if split_file is not None:
        _apply_split_file(rows, Path(split_file))
    return resolve_duplicates(rows)


def resolve_duplicates(rows: SourceRows) -> SourceRows:
    """A name under ``validation/`` and ``test/`` is one image twice: the authors' Emotion6 / FI caches save
    the test subset again as the validation set. Keep the test row, drop the validation copy and report it;
    any other repeated name (train and test, twice in one split) is refused: it would leak or be ambiguous."""
    where: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(rows.names):
        where[name].append(i)
    drop: set[int] = set()
    copies: list[tuple[int, int]] = []
    for name, idx in where.items():
        if len(idx) == 1:
            continue
        kinds = Counter(rows.splits[i] for i in idx)
        if len(idx) == 2 and kinds == Counter({"val": 1, "test": 1}):
            val, test = sorted(idx, key=lambda i: rows.splits[i] == "test")
            drop.add(val)
            copies.append((val, test))
            continue
        shown = ", ".join(str(rows.refs[i]) for i in idx)
        raise FeatureImportError(f"{rows.path}: name {name!r} appears {len(idx)} times ({shown}); one row "
                                 "per image (a name in two splits would leak the test set into training)")
    if not copies:
        return rows
    val_rows = sum(s == "val" for s in rows.splits)
    kept = rows.take([i for i in range(len(rows)) if i not in drop])
    kept.report = {**rows.report, "validation_duplicates_test": {
        "copies": len(copies), "validation_rows": val_rows, "whole_split": len(copies) == val_rows,
        "examples": [str(rows.refs[v]) for v, _ in copies[:EXAMPLES]],
        "pairs": [(rows.refs[v], rows.refs[t]) for v, t in copies],
    }}
    return kept


def describe_duplicates(report: dict[str, Any]) -> str | None:
    """The one-line note about validation copies of test rows (None when there were none)."""
    dup = report.get("validation_duplicates_test")
    if not dup:
        return None
    whole = ("validation/ is a copy of test/" if dup["whole_split"]
             else "some validation rows repeat test rows")
    diff = f", vectors equal within {dup['max_abs_diff']:.4g}" if dup.get("max_abs_diff") is not None else ""
    return (f"{whole} ({dup['copies']} of {dup['validation_rows']} names{diff}): kept the test rows, dropped "
            "the validation copies (the authors' loaders reuse the test subset as validation set)")


def load_tensor(path: Path) -> np.ndarray:
    """One feature vector from a ``.pt`` file: only a float tensor of shape (d,) or (1, d) is accepted."""
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for anything but plain tensors/containers, or a broken file
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FeatureImportError(f"{path}: refused, not a plain tensor file (torch.load(weights_only=True) "
                                 f"says: {first}); pickled objects are never run") from None
    if not isinstance(obj, torch.Tensor):
        raise FeatureImportError(f"{path}: holds a {type(obj).__name__}, not a tensor; save one tensor per "
                                 "image (torch.save(features, path))")
    if obj.ndim == 2 and obj.shape[0] == 1:
        obj = obj[0]
    if obj.ndim != 1 or not obj.is_floating_point():
        raise FeatureImportError(f"{path}: expected a float vector of shape (d,) or (1, d), got "
                                 f"{tuple(obj.shape)} {obj.dtype}")
    return obj.float().numpy()


def _matrix(rows: SourceRows) -> np.ndarray:
    if rows.kind == "npy":
        try:
            matrix = np.load(rows.path, allow_pickle=False, mmap_mode="r")
        except ValueError as exc:
            raise FeatureImportError(f"{rows.path}: refused ({exc}); save a plain float array: "
                                     "np.save(path, x)") from None
        if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.floating):
            raise FeatureImportError(f"{rows.path}: expected a 2-D float array (N, d), got {matrix.shape} "
                                     f"{matrix.dtype}")
        return matrix
    table = _read_table(rows.path, ["vector"])
    if "vector" not in table.column_names:
        raise FeatureImportError(f"{rows.path}: no 'vector' column (a list of floats per row)")
    col = table["vector"].combine_chunks()
    if col.null_count:
        raise FeatureImportError(f"{rows.path}: {col.null_count} row(s) have no vector")
    flat = col.flatten().to_numpy(zero_copy_only=False)
    if len(col) and len(flat) % len(col):
        raise FeatureImportError(f"{rows.path}: vectors of different lengths; one encoder per source")
    matrix = flat.reshape(len(col), -1) if len(col) else flat.reshape(0, 0)
    if pa.types.is_list(col.type):
        lengths = np.diff(col.offsets.to_numpy())
        if len(lengths) and (lengths != lengths[0]).any():
            bad = int(np.flatnonzero(lengths != lengths[0])[0])
            raise FeatureImportError(f"{rows.path}: row {bad} has a {lengths[bad]}-d vector, row 0 a "
                                     f"{lengths[0]}-d one; one encoder per source")
    if not np.issubdtype(matrix.dtype, np.floating):
        raise FeatureImportError(f"{rows.path}: 'vector' holds {matrix.dtype}, expected floats")
    return matrix


def read_vectors(rows: SourceRows, index: list[int] | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The float32 (n, d) vectors of ``rows`` (or of the positions ``index`` into it), in that order."""
    index = list(range(len(rows))) if index is None else index
    if rows.kind == "pt-tree":
        out: np.ndarray | None = None
        for k, i in enumerate(index):
            vec = load_tensor(rows.path / rows.refs[i])
            if out is None:
                out = np.empty((len(index), len(vec)), np.float32)
            elif len(vec) != out.shape[1]:
                raise FeatureImportError(f"{rows.path / rows.refs[i]}: a {len(vec)}-d vector, but "
                                         f"{rows.refs[index[0]]} is {out.shape[1]}-d; one encoder per source")
            out[k] = vec
            if on_progress is not None and (k % 1000 == 0 or k == len(index) - 1):
                on_progress(k + 1, len(index))
        return out if out is not None else np.zeros((0, 0), np.float32)
    matrix = _matrix(rows)
    if rows.kind == "npy" and rows.table is not None:
        n_table = _read_table(rows.table, ["name", "path", "image_id"]).num_rows
        if n_table != len(matrix):
            raise FeatureImportError(f"{rows.table} has {n_table} rows but {rows.path} has {len(matrix)}: "
                                     "one table row per matrix row, in the same order")
    out = np.asarray(matrix[[rows.refs[i] for i in index]], dtype=np.float32)
    if on_progress is not None:
        on_progress(len(index), len(index))
    return out


def max_copy_difference(rows: SourceRows) -> float | None:
    """Largest |validation - test| over the dropped validation copies (None when there were none)."""
    dup = rows.report.get("validation_duplicates_test")
    if not dup:
        return None
    worst = 0.0
    if rows.kind == "pt-tree":
        for v, t in dup["pairs"]:
            worst = max(worst, float(np.abs(load_tensor(rows.path / v) - load_tensor(rows.path / t)).max()))
    else:
        m = _matrix(rows)
        for v, t in dup["pairs"]:
            gap = np.asarray(m[v], np.float32) - np.asarray(m[t], np.float32)
            worst = max(worst, float(np.abs(gap).max()))
    return worst


def manifest_from_source(dataset: str, rows: SourceRows, taxonomy: str) -> pa.Table:
    """The manifest of a features-only dataset: one row per source name, id :func:`name_id`, ``path`` = the
    name, ``attributes`` = ``{"id_source": "name", "source": <file or row>}``."""
    out = []
    for name, ref, label, split in zip(rows.names, rows.refs, rows.labels, rows.splits, strict=True):
        where = f"{rows.path}: {ref}" if rows.kind == "pt-tree" else f"{rows.table or rows.path}: row {ref}"
        if label is None:
            raise FeatureImportError(f"{where}: no label (lay the files out as <split>/<class>/<name>.pt or "
                                     "give the table a 'label' column)")
        if split is None or split not in ("train", "val", "test"):
            raise FeatureImportError(f"{where}: no split ({split!r}); use <split>/ folders, a 'split' column "
                                     "or datasets.<name>.features.split_file")
        try:
            word = normalise_label(label, taxonomy)
        except UnknownLabelError as exc:
            raise FeatureImportError(f"{where}: {exc}") from None
        out.append({"image_id": name_id(dataset, name), "path": name, "split": split, "label": word,
                    "labels": [word], "taxonomy": taxonomy, "dataset": dataset, "status": "ok", "error": None,
                    "width": None, "height": None, "aliases": [],
                    "attributes": json.dumps({"id_source": "name", "source": ref}, sort_keys=True)})
    return pa.Table.from_pylist(out, schema=MANIFEST_SCHEMA)


DATASETS_FILE = "datasets.yaml"


def imported_datasets(storage_root: Path) -> dict[str, dict[str, Any]]:
    """Datasets ``tinyemo import-features`` recorded under ``<storage_root>/datasets.yaml`` (name -> raw
    flows.yaml entry); flows.yaml wins for every field it sets (``tinyemo_core.config.load_config``)."""
    import yaml

    path = Path(storage_root) / DATASETS_FILE
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    return {name: {k: v for k, v in entry.items() if k != "imported"}
            for name, entry in (data.get("datasets") or {}).items()}


def record_dataset(storage_root: Path, name: str, entry: dict[str, Any]) -> Path:
    """Add or replace ``name`` in ``<storage_root>/datasets.yaml`` (atomically), a file this tool owns next to
    the stores (the user's commented flows.yaml is never rewritten)."""
    from datetime import UTC, datetime

    import yaml

    path = Path(storage_root) / DATASETS_FILE
    data = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    data.setdefault("datasets", {})[name] = {
        **entry, "imported": datetime.now(UTC).isoformat(timespec="seconds")}
    text = ("# Features-only datasets recorded by `tinyemo import-features` (owned by tinyemo).\n"
            + yaml.safe_dump(data, sort_keys=False))
    Path(storage_root).mkdir(parents=True, exist_ok=True)
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def read_any(path: Path, table: Path | None = None) -> tuple[list[str], np.ndarray]:
    """Names and float32 vectors of whatever a user holds: one ``.pt`` file, a ``.pt`` tree, a ``.npy``
    (rows named ``<file>[i]`` without a table) or a table with a ``vector`` column (``tinyemo predict
    --features``)."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".pt":
        return [path.name], load_tensor(path)[None, :]
    if path.is_file() and path.suffix.lower() == ".npy" and table is None:
        rows = SourceRows("npy", path, [], [], [], [])
        matrix = np.asarray(_matrix(rows), np.float32)
        return [f"{path.name}[{i}]" for i in range(len(matrix))], matrix
    kind = source_kind(path)
    rows = _tree_rows(path) if kind == "pt-tree" else _table_rows(kind, path, Path(table) if table else path)
    return [str(r) if kind == "pt-tree" else n for r, n in zip(rows.refs, rows.names, strict=True)], \
        read_vectors(rows)
