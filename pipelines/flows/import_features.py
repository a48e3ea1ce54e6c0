"""import-features: turn a feature cache (the authors' ``<split>/<class>/<name>.pt`` tree, a ``.npy`` + rows
table, or a Parquet/Arrow table of name, label, split, vector) into the feature store extraction would write,
so train-projector and evaluate run without extracting anything.

Only the imported dataset is touched (no other dataset of the profile is ingested). When its images are at
``datasets.<d>.root``, rows are matched to the image manifest (ids from the image bytes); a store imported
earlier from names is re-keyed instead, without recomputing a vector. Without images the dataset becomes
features-only: its manifest comes from the source (ids from the source's names, docs/datasets.md) and it is
recorded in ``<storage_root>/datasets.yaml`` so every flow can use it (``--set held_in=[fi]``).

:func:`ensure_imported` is how the other flows bring a features-only dataset's store up to date.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from pipelines.flows.steps import config_from
from pipelines.runtime.caching import recorded
from pipelines.runtime.progress import ThrottledProgress
from tinyemo_core.config import DatasetSpec, RunConfig, resolve_dataset
from tinyemo_core.data.feature_sources import FeatureImportError, record_dataset
from tinyemo_core.stages import features, features_only, ingest
from tinyemo_core.stages.import_features import import_features as import_stage
from tinyemo_core.stages.import_features import rekey_store
from tinyemo_core.store.features import FeatureStore


def _progress(dataset: str):
    key = f"import-{dataset}".lower().replace("_", "-")
    progress = ThrottledProgress(key, f"Importing {dataset} features")

    def on_progress(p: dict) -> None:
        if p.get("total"):
            progress(p["done"], p["total"], p.get("stage"))

    return on_progress


@task(name="import-features")
@recorded
def import_task(dataset: str, source: Path, store, encoder_name: str, manifest: Path | None,
                table: Path | None, split_file: Path | None, features_manifest: Path | None, taxonomy: str,
                dtype: str, shard_size: int, replace: bool) -> dict:
    return import_stage(dataset, source, store, encoder_name=encoder_name, manifest=manifest, table=table,
                        split_file=split_file, features_manifest=features_manifest, taxonomy=taxonomy,
                        dtype=dtype, shard_size=shard_size, replace=replace, on_progress=_progress(dataset))


@task(name="ingest-one")
@recorded
def manifest_task(name: str, spec: DatasetSpec, storage_root: Path, workers: int) -> dict:
    """One dataset's manifest (image ingest, or the features-only manifest from its source)."""
    plan = ingest.plan(name, spec, storage_root)
    return ingest.ingest(name, spec, storage_root, plan.fingerprint, workers=workers, progress=False)


@task(name="import-source")
@recorded
def import_source_task(name: str, spec: DatasetSpec, store: FeatureStore, manifest: Path, encoder_name: str,
                       dtype: str, shard_size: int) -> dict:
    return features_only.import_into(name, spec, store, manifest, encoder_name=encoder_name, dtype=dtype,
                                     shard_size=shard_size, on_progress=_progress(name))


@task(name="rekey-features")
@recorded
def rekey_task(name: str, store: FeatureStore, manifest: Path, dtype: str, shard_size: int) -> dict:
    return rekey_store(name, store, manifest, dtype=dtype, shard_size=shard_size)


def ensure_imported(cfg: RunConfig, manifests: dict[str, dict]) -> dict[str, FeatureStore]:
    """The stores of features-only datasets, imported from their sources when not up to date (no image
    encoder is loaded; a profile encoder other than the source's is refused with one line)."""
    enc_fp = features.encoder_fingerprint(cfg.encoder) if manifests else ""
    stores, rows = {}, []
    for name, desc in manifests.items():
        spec = cfg.datasets[name]
        features_only.check_encoder(name, spec, cfg.encoder_name)
        store = features.open_store(cfg.storage_root, cfg.encoder_name, name, enc_fp)
        if not features_only.import_complete(spec, store):
            out = import_source_task(name, spec, store, Path(desc["manifest"]), cfg.encoder_name,
                                     cfg.encoder.store_dtype, cfg.spec.extraction.shard_size)
            rows.append({"dataset": name, "imported": out.get("imported"), "notes": "; ".join(out["notes"])})
        stores[name] = store
    if rows:
        create_table_artifact(rows, key="import-features", description="Features-only datasets imported")
    return stores


def _dataset_spec(cfg: RunConfig, dataset: str, source: Path, table: Path | None, split_file: Path | None
                  ) -> tuple[DatasetSpec, bool]:
    """The dataset as flows.yaml (or an earlier import) declares it, resolved; and whether its images are at
    hand. Without images the source becomes its ``features``."""
    base = cfg.config_path.parent
    declared = cfg.flows.datasets.get(dataset)
    if declared is not None and declared.root is not None and resolve_dataset(declared, base).root.exists():
        return resolve_dataset(declared, base), True
    entry = {"path": str(source.resolve()), "encoder": cfg.encoder_name,
             **({"table": str(table.resolve())} if table else {}),
             **({"split_file": str(split_file.resolve())} if split_file else {})}
    if declared is None:
        spec = DatasetSpec.model_validate({"layout": "imagefolder", "taxonomy": "open", "features": entry})
    else:
        spec = declared.model_copy(update={"features": DatasetSpec.model_validate(
            {"layout": declared.layout, "features": entry}).features})
    return resolve_dataset(spec, base), False


@flow(name="import-features")
def import_features(config: str = "flows.yaml", profile: str = "demo", overrides: list[str] | None = None,
                    dataset: str = "", source: str = "", table: str | None = None,
                    encoder: str | None = None, split_file: str | None = None, replace: bool = False) -> dict:
    """Import ``source`` as ``dataset``'s features for ``encoder`` (default: the profile's encoder)."""
    extra = [f"encoder={encoder}"] if encoder else []
    cfg = config_from(config, profile, [*(overrides or []), *extra])
    if not Path(source).exists():
        raise FileNotFoundError(f"{source}: no such feature cache (a folder of .pt files, a .npy or a table)")
    src = Path(source)
    table_path, split_path = (Path(table) if table else None), (Path(split_file) if split_file else None)
    spec, with_images = _dataset_spec(cfg, dataset, src, table_path, split_path)
    enc_fp = features.encoder_fingerprint(cfg.encoder)
    store = features.open_store(cfg.storage_root, cfg.encoder_name, dataset, enc_fp)
    desc_manifest = manifest_task(dataset, spec, cfg.storage_root, cfg.spec.extraction.ingest_workers) \
        if with_images else None
    dtype, shard = cfg.encoder.store_dtype, cfg.spec.extraction.shard_size
    held = (store.manifest() or {}).get("imported") or {}
    if with_images and held.get("id_source") == "name":  # the images arrived: re-key, compute nothing
        desc = {**rekey_task(dataset, store, Path(desc_manifest["manifest"]), dtype, shard), "rekeyed": True}
    elif with_images:
        desc = import_task(dataset, src, store, cfg.encoder_name, Path(desc_manifest["manifest"]), table_path,
                           split_path, None, spec.taxonomy or "open", dtype, shard, replace)
    else:
        manifest = manifest_task(dataset, spec, cfg.storage_root, 1)
        taxonomy = features_only.taxonomy_of(spec)
        desc = import_task(dataset, src, store, cfg.encoder_name, None, table_path, split_path,
                           Path(manifest["manifest"]), taxonomy, dtype, shard, replace)
        declared = cfg.flows.datasets.get(dataset)
        record = {"features": spec.features.model_dump(mode="json", exclude_none=True)}
        if declared is None or declared.features is None:
            if declared is None:
                record = {"layout": spec.layout, "taxonomy": spec.taxonomy, **record}
            record_dataset(cfg.storage_root, dataset, record)
        desc = {**desc, "features_only": True}
    keys = ("dataset", "format", "declared_encoder", "id_source", "dim", "source_rows", "imported", "missing",
            "unmatched", "ambiguous", "computed")
    row = {k: desc.get(k) for k in keys}
    create_table_artifact([row], key="import-features", description=f"Imported features into {store.root}")
    logger = get_run_logger()
    logger.info("import-features: %s", row)
    for note in desc.get("notes") or []:
        logger.warning("import-features %s: %s", dataset, note)
    return desc


__all__ = ["FeatureImportError", "ensure_imported", "import_features"]
