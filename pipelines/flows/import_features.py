"""import-features: turn an existing feature cache (the authors' ``<split>/<class>/<name>.pt`` tree, or a
``.npy`` matrix + ids/paths table) into the feature store extraction would write, so train-projector and
evaluate then run without extracting anything.

The dataset's images must be present (its manifest gives the image ids from the image bytes); for caches
without images, call ``tinyemo_core.stages.import_features.import_features(..., out_manifest=...)`` from
Python (ids derived from the paths, recorded as such) - see docs/stores.md.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from pipelines.flows.steps import config_from, ensure_manifests
from pipelines.runtime.caching import recorded
from pipelines.runtime.progress import ThrottledProgress
from tinyemo_core.stages import features
from tinyemo_core.stages.import_features import import_features as import_stage


@task(name="import-features")
@recorded
def import_task(dataset: str, source: Path, store, encoder_name: str, manifest: Path, table: Path | None,
                dtype: str, shard_size: int) -> dict:
    key = f"import-{dataset}".lower().replace("_", "-")
    progress = ThrottledProgress(key, f"Importing {dataset} features")

    def on_progress(p: dict) -> None:
        if p.get("total"):
            progress(p["done"], p["total"], p.get("stage"))

    return import_stage(dataset, source, store, encoder_name=encoder_name, manifest=manifest, table=table,
                        dtype=dtype, shard_size=shard_size, on_progress=on_progress)


@flow(name="import-features")
def import_features(config: str = "flows.yaml", profile: str = "demo", overrides: list[str] | None = None,
                    dataset: str = "", source: str = "", table: str | None = None,
                    encoder: str | None = None) -> dict:
    """Import ``source`` as ``dataset``'s features for ``encoder`` (default: the profile's encoder)."""
    extra = [f"encoder={encoder}"] if encoder else []
    cfg = config_from(config, profile, [*(overrides or []), *extra])
    if dataset not in cfg.datasets:
        raise ValueError(f"dataset {dataset!r} is not in profile {cfg.profile!r} "
                         f"(its datasets: {', '.join(cfg.datasets)})")
    if not Path(source).exists():
        raise FileNotFoundError(f"{source}: no such feature cache (a folder of .pt files or a .npy)")
    manifests = ensure_manifests(cfg)
    store = features.open_store(cfg.storage_root, cfg.encoder_name, dataset,
                                features.encoder_fingerprint(cfg.encoder))
    manifest = Path(manifests[dataset]["manifest"])
    table_path = Path(table) if table else None
    desc = import_task(dataset, Path(source), store, cfg.encoder_name, manifest, table_path,
                       cfg.encoder.store_dtype, cfg.spec.extraction.shard_size)
    keys = ("dataset", "format", "declared_encoder", "id_source", "dim", "source_rows", "imported", "missing",
            "unmatched", "ambiguous", "computed")
    row = {k: desc.get(k) for k in keys}
    create_table_artifact([row], key="import-features", description=f"Imported features into {store.root}")
    get_run_logger().info("import-features: %s", row)
    return desc
