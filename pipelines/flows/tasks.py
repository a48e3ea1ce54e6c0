"""Prefect tasks: each is a few lines around one ``tinyemo_core.stages`` function.

Tasks take and return small descriptors (paths, fingerprints, counts). Cache keys are the stages' content
fingerprints (passed as ``key``, see :mod:`pipelines.runtime.caching`).
"""

from __future__ import annotations

from pathlib import Path

from prefect import task

from pipelines.runtime.caching import CACHED, recorded
from pipelines.runtime.progress import ThrottledProgress
from tinyemo_core.monitor import DeviceMonitor
from tinyemo_core.stages import evaluate as evaluate_stage
from tinyemo_core.stages import features, ingest, labels, word_demo
from tinyemo_core.stages import train as train_stage


@task(name="demo-data", **CACHED)
@recorded
def demo_data_task(key: str, storage_root: Path, spec) -> dict:
    return ingest.make_demo_data(storage_root, spec)


@task(name="word-demo", **CACHED)
@recorded
def word_demo_task(key: str, **kwargs) -> dict:
    return word_demo.make(**kwargs)


@task(name="ingest", retries=1, **CACHED)
@recorded
def ingest_task(key: str, fingerprint: str, name: str, spec, storage_root: Path, workers: int) -> dict:
    progress = ThrottledProgress(f"ingest-{name}".lower().replace("_", "-"), f"Ingesting {name} (images %)")
    return ingest.ingest(name, spec, storage_root, fingerprint, workers=workers, progress=False,
                         on_progress=progress)  # fmt: skip


@task(name="extract-shards", persist_result=False)
@recorded
def extract_shards_task(spec, store, plans: list, output: str = "pooled") -> list[dict]:
    """Several shards in one task (the flow's memory stays flat in the number of shards). Each shard is
    written atomically under its own name, so a retry or a rerun recomputes only the shards not on disk;
    nothing is cached by Prefect (shards are planned only while the store lacks them)."""
    infos, failed = [], []
    with DeviceMonitor() as monitor:
        for plan in plans:
            try:
                infos.append(features.extract_shard(spec, store, plan, output=output))
            except Exception as exc:  # noqa: BLE001 - the other shards of the group still run
                failed.append(f"{plan.name}: {type(exc).__name__}: {exc}")
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(plans)} shard(s) failed: " + "; ".join(failed))
    summary = monitor.summary()
    return [{**info, **summary} for info in infos]


@task(name="commit-features", retries=1)
@recorded
def commit_features_task(store, new_shards: list[dict], build_faiss: bool = True) -> dict:
    return features.commit_store(store, new_shards, build_faiss=build_faiss)


@task(name="embed-labels", **CACHED)
@recorded
def embed_labels_task(
    key: str, fingerprint: str, spec, backbone_name: str, pairs: list, storage_root: Path
) -> dict:
    return labels.embed_labels(spec, backbone_name, pairs, storage_root, fingerprint)


@task(name="embed-vocabulary", **CACHED)
@recorded
def embed_vocabulary_task(key: str, fingerprint: str, spec, backbone_name: str, storage_root: Path) -> dict:
    return labels.embed_vocabulary(spec, backbone_name, storage_root, fingerprint)


@task(name="train-projector", **CACHED)
@recorded
def train_task(
    key: str, held_in, manifests, stores, label_table: str, spec, out_dir: Path, on_epoch=None,
    memory_cap_mb: int | None = None,
) -> dict:
    with DeviceMonitor() as monitor:
        desc = train_stage.train(held_in, manifests, stores, label_table, spec, out_dir, progress=False,
                                 on_epoch=on_epoch, memory_cap_mb=memory_cap_mb)
    return {**desc, **monitor.summary()}


@task(name="evaluate", **CACHED)
@recorded
def evaluate_task(
    key: str,
    run_dir: Path,
    which: str,
    datasets,
    roles,
    manifests,
    stores,
    label_table: str,
    out_dir: Path,
    tsne: bool,
    memory_cap_mb: int | None = None,
) -> dict:
    return evaluate_stage.evaluate(run_dir, which, datasets, roles, manifests, stores, label_table, out_dir,
                                   tsne=tsne, memory_cap_mb=memory_cap_mb)
