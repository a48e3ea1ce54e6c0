"""Features-only datasets: a dataset whose ``features:`` source stands in for its images (docs/datasets.md).

- its manifest comes from the source (names, labels, splits; no vector read), fingerprinted by the source's
  listing (path, size, mtime) and settings, like an image manifest by its tree;
- its feature store (for the source's declared encoder) is filled by importing the source, never by
  extraction: no image encoder is loaded;
- commands that need pixels refuse it with one line (:func:`refuse_features_only`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tinyemo_core.config import DatasetSpec
from tinyemo_core.data.adapters import get_adapter
from tinyemo_core.data.feature_sources import describe_duplicates, list_source, manifest_from_source
from tinyemo_core.fingerprint import step_fingerprint
from tinyemo_core.stages.import_features import import_features, source_fingerprint
from tinyemo_core.store.features import FeatureStore
from tinyemo_core.store.manifests import write_manifest


class NeedsImages(ValueError):
    """A command that needs pixels was given a features-only dataset."""


def source_paths(spec: DatasetSpec) -> tuple[Path, Path | None, Path | None]:
    src = spec.features
    assert src is not None
    return Path(src.path), src.table, src.split_file


def manifest_fingerprint(name: str, spec: DatasetSpec) -> str:
    """The features-only manifest's fingerprint: settings + the source's listing (no vector read)."""
    settings = spec.model_dump(mode="json", exclude={"root", "template", "synonyms", "zero_shot_split",
                                                      "features"})
    src = spec.features
    assert src is not None
    return step_fingerprint("ingest", name, settings, "features-only", src.encoder,
                            source_fingerprint(*source_paths(spec)))


def taxonomy_of(spec: DatasetSpec) -> str:
    return spec.taxonomy or get_adapter(spec.layout).taxonomy


def build_manifest(name: str, spec: DatasetSpec, path: Path, fingerprint: str) -> dict[str, Any]:
    """Write the features-only manifest at ``path`` (names, labels, splits from the source)."""
    source, table, split_file = source_paths(spec)
    rows = list_source(source, table=table, split_file=split_file)
    manifest = manifest_from_source(name, rows, taxonomy_of(spec))
    note = describe_duplicates(rows.report)
    dup = rows.report.get("validation_duplicates_test") or {}
    summary = {
        "dataset": name,
        "fingerprint": fingerprint,
        "root": None,
        "features": str(source),
        "declared_encoder": spec.features.encoder if spec.features else None,
        "layout": spec.layout,
        "id_source": "name",
        "counts": {"rows": manifest.num_rows, "ok": manifest.num_rows, "quarantined": {},
                   "duplicates": int(dup.get("copies", 0)), "notes": {"features_only": note} if note else {}},
        "quarantine": [],
        "notes": [note] if note else [],
    }
    summary = write_manifest(path, manifest, summary)
    return {"dataset": name, "manifest": str(path), "fingerprint": fingerprint, "computed": True, **summary}


def import_into(name: str, spec: DatasetSpec, store: FeatureStore, manifest: Path, *, encoder_name: str,
                dtype: str, shard_size: int, on_progress=None) -> dict[str, Any]:
    """Fill ``store`` from the dataset's declared source (ids = the manifest's names); a store holding an
    earlier state of the source is rebuilt."""
    source, table, split_file = source_paths(spec)
    return import_features(name, source, store, encoder_name=encoder_name, table=table, split_file=split_file,
                           features_manifest=manifest, taxonomy=taxonomy_of(spec), dtype=dtype,
                           shard_size=shard_size, replace=True, on_progress=on_progress)


def import_complete(spec: DatasetSpec, store: FeatureStore) -> bool:
    """The store holds the import of the source as it is now."""
    imported = (store.manifest() or {}).get("imported") or {}
    return imported.get("source_fingerprint") == source_fingerprint(*source_paths(spec)) and \
        imported.get("id_source") == "name"


def check_encoder(name: str, spec: DatasetSpec, encoder_name: str) -> None:
    """A features-only dataset has vectors of one encoder only; another encoder would need its images."""
    src = spec.features
    if src is not None and spec.features_only and src.encoder != encoder_name:
        raise NeedsImages(f"dataset {name!r} has features of encoder {src.encoder!r} only (no images): "
                          f"use --set encoder={src.encoder}, or give its images (datasets.{name}.root)")


def refuse_features_only(datasets: dict[str, DatasetSpec], names: Iterable[str], command: str) -> None:
    """Raise :class:`NeedsImages` (one line) when ``command`` would need the pixels of a features-only
    dataset among ``names``."""
    for name in names:
        spec = datasets.get(name)
        if spec is not None and spec.features_only:
            raise NeedsImages(f"{command} needs the images of dataset {name!r}, which has features only "
                              f"(from {spec.features.path if spec.features else '?'}); set "
                              f"datasets.{name}.root to its images")


def _generation_datasets(cfg) -> list[str]:
    gen = cfg.spec.generation
    return [] if gen is None else (list(gen.datasets) or list(cfg.datasets))


def _judged_datasets(cfg) -> list[str]:
    spec = cfg.spec.evaluate_generated
    return [] if spec is None else (list(spec.datasets) or list(cfg.datasets))


#: flows that read pixels, and which of the profile's datasets they read them from
PIXEL_FLOWS = {
    "generate-qa": ("synthetic Q&A generation", _generation_datasets),
    "finetune-reasoning": ("reasoning fine-tuning", _generation_datasets),
    "reason": ("conditional reasoning", _generation_datasets),
    "full-pipeline": ("the reasoning half of full-pipeline", _generation_datasets),
    "evaluate-generated": ("judging generated answers", _judged_datasets),
    "emotic-exports": ("red-box exports", lambda cfg: [n for n, s in cfg.datasets.items()
                                                       if s.layout == "emotic"]),
}


def check_flow(cfg, flow: str) -> None:
    """Refuse (one line, :class:`NeedsImages`) a flow that needs the pixels of a features-only dataset, or
    features of an encoder its source did not use."""
    if flow != "import-features":
        grid = cfg.spec.grid.encoders if flow == "encoder-backbone-grid" and cfg.spec.grid else []
        for name, spec in cfg.datasets.items():
            for encoder in dict.fromkeys([cfg.encoder_name, *grid]):
                check_encoder(name, spec, encoder)
    if flow in PIXEL_FLOWS:
        what, datasets_of = PIXEL_FLOWS[flow]
        refuse_features_only(cfg.datasets, datasets_of(cfg), f"{flow} ({what})")


def check_source(spec: DatasetSpec) -> list[str]:
    """What a features-only dataset's source lacks (cheap: no vector read); empty when it looks right."""
    src = spec.features
    if src is None:
        return []
    problems = [f"feature source {p} does not exist" for p in (src.path, src.table, src.split_file)
                if p is not None and not Path(p).exists()]
    if not problems and Path(src.path).suffix.lower() == ".npy" and src.table is None:
        problems.append(f"feature source {src.path} is a .npy without its rows table (features.table)")
    return problems
