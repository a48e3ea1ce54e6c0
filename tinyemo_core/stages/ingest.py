"""Ingest stage: dataset folder -> manifest Parquet (reused when the dataset's files did not change)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinyemo_core.config import DatasetSpec, DemoDataSpec
from tinyemo_core.data.demo import DEMO_DATASETS, generate_demo
from tinyemo_core.data.ingest import build_manifest, quarantine_summary
from tinyemo_core.stages import features_only
from tinyemo_core.store.demo_data import DemoDataStore
from tinyemo_core.store.manifests import (
    ManifestStore,
    manifest_fingerprint,
    write_manifest,
)
from tinyemo_core.store.plan import StorePlan
from tinyemo_core.store.splits import SplitStore


def demo_data_root(storage_root: Path) -> Path:
    return DemoDataStore(storage_root).root


def make_demo_data(storage_root: Path, spec: DemoDataSpec) -> dict[str, Any]:
    """Generate (or find) the bundled demo datasets under ``storage/demo_data``."""
    datasets = generate_demo(
        demo_data_root(storage_root),
        seed=spec.seed,
        images_per_class=spec.images_per_class,
        image_size=spec.image_size,
    )
    return {"root": str(demo_data_root(storage_root)), "datasets": sorted(datasets)}


def plan_demo_data(storage_root: Path, spec: DemoDataSpec) -> StorePlan:
    """The demo datasets: complete when every one carries its marker."""
    return DemoDataStore(storage_root).plan(list(DEMO_DATASETS), spec)


def ingest_settings(spec: DatasetSpec) -> dict[str, Any]:
    """The settings that shape a manifest (the root's contents are hashed separately)."""
    return spec.model_dump(mode="json", exclude={"root", "template", "synonyms", "zero_shot_split",
                                                  "features"})


def ingest_fingerprint(name: str, spec: DatasetSpec) -> str:
    if spec.features_only:  # no images: the manifest comes from the feature source (stages/features_only.py)
        return features_only.manifest_fingerprint(name, spec)
    return manifest_fingerprint(name, ingest_settings(spec), spec.root)


def plan(name: str, spec: DatasetSpec, storage_root: Path) -> StorePlan:
    """The manifest for dataset ``name`` as configured: fingerprint, path, complete or not."""
    return ManifestStore(storage_root).plan(name, ingest_fingerprint(name, spec))


def ingest(
    name: str,
    spec: DatasetSpec,
    storage_root: Path,
    fingerprint: str,
    *,
    workers: int = 4,
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Build the manifest for one dataset unless a complete one with this fingerprint exists."""
    store = ManifestStore(storage_root)
    plan = store.plan(name, fingerprint)
    if (done := store.read(plan)) is not None:
        return done
    path = plan.path
    if spec.features_only:
        return features_only.build_manifest(name, spec, path, fingerprint)

    split_file = SplitStore(storage_root).path(name)
    result = build_manifest(
        name,
        spec.layout,
        spec.root,
        taxonomy=spec.taxonomy,
        seed=spec.seed,
        split_file=split_file,
        workers=workers,
        progress=progress,
        on_progress=on_progress,
        val_fraction=spec.val_fraction,
        test_fraction=spec.test_fraction,
    )
    summary = {
        "dataset": name,
        "fingerprint": fingerprint,
        "root": str(spec.root),
        "layout": spec.layout,
        "counts": result.counts,
        "quarantine": quarantine_summary(result.table),
    }
    summary = write_manifest(path, result.table, summary)
    return {"dataset": name, "manifest": str(path), "fingerprint": fingerprint, "computed": True, **summary}
