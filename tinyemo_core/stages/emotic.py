"""Stages of LLaVA on EMOTIC (docs/datasets.md "EMOTIC", docs/recipes.md): per-person table + red-box images,
then the two LLaVA exports.

- :func:`render_persons`: an EMOTIC manifest -> ``storage/emotic/<dataset>/persons-<fp16>/persons.parquet``
  (one row per person with a box and at least one category) and each person's red-box image in the
  content-addressed ``storage/emotic_boxes/`` (:mod:`tinyemo_core.data.emotic_boxes`). ``summary.json``
  (written last) marks it complete.
- :func:`export_persons`: that table -> ``storage/emotic/<dataset>/export-<fp16>/<variant>_<split>.json``
  (variants ``emotions_vad`` and ``emotions``) in LLaVA format, images relative to ``storage/emotic_boxes/``;
  ``summary.json`` last.
- :func:`read_persons`: the person table (the generated-answer judge scores one item per person,
  :func:`tinyemo_core.judge.emotic.person_items`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tinyemo_core.data.emotic_boxes import RENDER_VERSION, BoxStyle, boxes_root, render_person
from tinyemo_core.data.emotic_persons import person_vad
from tinyemo_core.fingerprint import stable_hash
from tinyemo_core.generate import emotic_export as X
from tinyemo_core.generate.export import write_json as write_records
from tinyemo_core.store.atomic import write_parquet
from tinyemo_core.store.emotic import EmoticStore
from tinyemo_core.store.manifests import read_manifest, read_summary
from tinyemo_core.store.plan import StorePlan

VERSION = "1"  # bump when the person table or the export records would change for the same inputs
Progress = Callable[[dict], None]

PERSONS_SCHEMA = pa.schema([
    pa.field("person_id", pa.string(), nullable=False),  # <image_id>-p<index>
    pa.field("image_id", pa.string(), nullable=False),
    pa.field("person_index", pa.int32(), nullable=False),  # position in the image's annotation
    pa.field("path", pa.string(), nullable=False),  # source image, relative to the dataset root
    pa.field("split", pa.string(), nullable=False),
    pa.field("bbox", pa.list_(pa.float64(), 4), nullable=False),  # x1, y1, x2, y2 (pixels)
    pa.field("labels", pa.list_(pa.string()), nullable=False),  # the person's categories, official order
    pa.field("valence", pa.float64()), pa.field("arousal", pa.float64()), pa.field("dominance", pa.float64()),
    pa.field("gender", pa.string()), pa.field("age", pa.string()),
    pa.field("rendered", pa.string(), nullable=False),  # red-box PNG, relative to storage/emotic_boxes/
])  # fmt: skip


# --- persons + red boxes ----------------------------------------------------------------------------------
def persons_fingerprint(manifest: Path, style: BoxStyle = BoxStyle()) -> str:
    """Manifest identity (its fingerprint covers the annotation files) + rows + box style + code versions."""
    content = read_summary(Path(manifest))["content_hash"]
    return stable_hash("emotic_persons", VERSION, RENDER_VERSION, Path(manifest).stem, content, asdict(style))


def persons_plan(dataset: str, manifest: Path, storage_root: Path, style: BoxStyle = BoxStyle()) -> StorePlan:
    return EmoticStore(storage_root).plan(dataset, "persons", persons_fingerprint(manifest, style))


def person_rows(manifest: Path) -> tuple[list[dict[str, Any]], Counter]:
    """Every usable person of a manifest's decoded images (no render) and the counts of those left out."""
    order = {c: i for i, c in enumerate(X.CATEGORIES)}
    rows, skipped = [], Counter()
    for r in read_manifest(Path(manifest), ok_only=True).to_pylist():
        if r["taxonomy"] != "emotic26":
            raise ValueError(f"manifest {manifest} is {r['taxonomy']!r}, not an EMOTIC (emotic26) manifest")
        people = json.loads(r["attributes"] or "{}").get("people")
        if people is None:
            raise ValueError(f"manifest {manifest}: image {r['path']} has no attributes.people (not EMOTIC?)")
        for pos, p in enumerate(people):
            index = int(p.get("index", pos))
            if "bbox" not in p:
                skipped["no valid bbox"] += 1
                continue
            if not p.get("categories"):
                skipped["no categories"] += 1
                continue
            rows.append({
                "person_id": f"{r['image_id']}-p{index}", "image_id": r["image_id"], "person_index": index,
                "path": r["path"], "split": r["split"], "bbox": [float(v) for v in p["bbox"]],
                "labels": sorted(p["categories"], key=lambda c: order.get(c, len(order))),
                **{k: p.get(k) for k in ("valence", "arousal", "dominance")},
                "gender": p.get("gender"), "age": p.get("age"),
            })  # fmt: skip
    return rows, skipped


def render_persons(
    dataset: str,
    manifest: Path,
    dataset_root: Path,
    storage_root: Path,
    *,
    style: BoxStyle = BoxStyle(),
    workers: int = 4,
    on_progress: Progress | None = None,
    plan: StorePlan | None = None,
) -> dict[str, Any]:
    """Per-person table + red-box images (each drawn once, cached); returns ``summary.json``'s content."""
    store = EmoticStore(storage_root)
    plan = plan or persons_plan(dataset, manifest, storage_root, style)
    if (done := store.read(plan)) is not None:
        return done
    rows, skipped = person_rows(manifest)
    drawn = 0

    def one(row: dict) -> tuple[str, bool]:
        src = Path(dataset_root) / row["path"]
        return render_person(src, row["image_id"], row["bbox"], storage_root, style)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # decode/encode release the GIL
        for n, (row, (rel, computed)) in enumerate(zip(rows, pool.map(one, rows), strict=True), start=1):
            row["rendered"] = rel
            drawn += computed
            if on_progress is not None and (n % 64 == 0 or n == len(rows)):
                on_progress({"done": n, "total": len(rows), "rendered": drawn})
    persons = EmoticStore.persons_file(plan.path)
    write_parquet(persons, pa.Table.from_pylist(rows, schema=PERSONS_SCHEMA))
    summary = {
        "dataset": dataset, "fingerprint": plan.fingerprint, "manifest": str(manifest), "dir": str(plan.path),
        "persons": str(persons), "boxes_root": str(boxes_root(storage_root)),
        "style": asdict(style), "rows": len(rows),
        "by_split": dict(sorted(Counter(r["split"] for r in rows).items())),
        "images": len({r["image_id"] for r in rows}), "rendered_now": drawn,
        "skipped": dict(sorted(skipped.items())),
    }  # fmt: skip
    return store.commit(plan, summary)


def _require(persons_dir: Path) -> dict:
    summary = EmoticStore.summary(persons_dir)
    if summary is None:
        raise FileNotFoundError(f"{persons_dir} is not a complete EMOTIC person table; run render_persons")
    return summary


def read_persons(persons_dir: Path) -> pa.Table:
    _require(persons_dir)
    return pq.read_table(EmoticStore.persons_file(persons_dir))


# --- LLaVA exports ----------------------------------------------------------------------------------------
def export_plan(dataset: str, persons_dir: Path, storage_root: Path) -> StorePlan:
    persons_fp = _require(persons_dir)["fingerprint"]
    prompts = {v: X.prompt(v) for v in X.VARIANTS}
    fp = stable_hash("emotic_export", VERSION, persons_fp, prompts, X.VAD_WORDS)
    return EmoticStore(storage_root).plan(dataset, "export", fp)


def export_persons(dataset: str, persons_dir: Path, storage_root: Path, plan: StorePlan | None = None
                   ) -> dict[str, Any]:
    """``<variant>_<split>.json`` for both variants (``emotions_vad_train.json``, ``emotions_train.json``,
    ...): a fine-tuning stage picks one by its export stem; ``summary.json`` last."""
    store = EmoticStore(storage_root)
    plan = plan or export_plan(dataset, persons_dir, storage_root)
    if (done := store.read(plan)) is not None:
        return done
    rows = read_persons(persons_dir).to_pylist()
    files, records = {}, {}
    for variant in X.VARIANTS:
        by_split: dict[str, list[dict]] = {}
        for row in rows:
            rec = X.person_record(row["person_id"], row["rendered"], row["labels"], person_vad(row), variant)
            by_split.setdefault(row["split"], []).append(rec)
        for split, recs in sorted(by_split.items()):
            files[f"{variant}_{split}"] = str(write_records(recs, plan.path / f"{variant}_{split}.json"))
            records[f"{variant}_{split}"] = len(recs)
    no_vad = Counter(r["split"] for r in rows if person_vad(r) is None)
    summary = {
        "dataset": dataset, "fingerprint": plan.fingerprint, "dir": str(plan.path), "files": files,
        "image_root": str(boxes_root(storage_root)), "records": records,
        "without_vad": dict(sorted(no_vad.items())), "prompts": {v: X.prompt(v) for v in X.VARIANTS},
    }  # fmt: skip
    return store.commit(plan, summary)
