"""Stage orchestration shared by the flows: plan each stage, bring it up to date, publish artifacts.

Every flow brings its inputs up to date the same way, :func:`pipelines.runtime.caching.up_to_date`: the
stage's plan says complete -> its store kind reads the descriptor back and no task runs; incomplete -> the
stage's cached task, refreshed. Flows differ only in where they stop.

Artifacts report what a run did: a stage that computed something publishes its table/report; a complete
store read back publishes nothing (the artifact's key keeps the version of the run that computed it, so the
Prefect UI still shows it), which keeps a warm rerun to one flow run and a plan per stage.
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.futures import as_completed
from prefect.tasks import exponential_backoff

from pipelines.flows import tasks
from pipelines.runtime.caching import up_to_date
from pipelines.runtime.drain import drain_at_exit
from pipelines.runtime.gpu import gpu_tags
from pipelines.runtime.memo import load_config_once, walk_once_per_flow_run
from pipelines.runtime.progress import ThrottledProgress
from tinyemo_core.config import RunConfig
from tinyemo_core.stages import evaluate as evaluate_stage
from tinyemo_core.stages import features, ingest, labels, word_demo
from tinyemo_core.stages import train as train_stage
from tinyemo_core.store.demo_data import DemoDataStore
from tinyemo_core.store.evaluations import EvaluationStore, report_markdown
from tinyemo_core.store.features import FeatureStore, ShardPlan
from tinyemo_core.store.labels import LabelStore
from tinyemo_core.store.manifests import ManifestStore
from tinyemo_core.store.runs import RunStore


def config_from(config: str, profile: str, overrides: list[str] | None) -> RunConfig:
    """The flow's config (loaded once per command) and, from here on, one walk per dataset tree."""
    walk_once_per_flow_run()
    from prefect.runtime import flow_run

    drain_at_exit(flow_run.root_flow_run_id or flow_run.id)  # temporary server: no lost task-run records
    cfg = load_config_once(config, profile, overrides or [])
    get_run_logger().info(
        "profile %s: encoder %s, backbone %s, datasets %s",
        cfg.profile,
        cfg.encoder_name,
        cfg.backbone_name,
        ", ".join(cfg.datasets),
    )
    return cfg


def ensure_manifests(cfg: RunConfig) -> dict[str, dict]:
    """Demo data (demo profile) then one manifest per dataset."""
    if cfg.spec.demo_data is not None:
        demo = DemoDataStore(cfg.storage_root)
        up_to_date(ingest.plan_demo_data(cfg.storage_root, cfg.spec.demo_data), demo.read,
                   tasks.demo_data_task, scope=cfg.storage_root, storage_root=cfg.storage_root,
                   spec=cfg.spec.demo_data)
    if cfg.spec.label_transfer is not None and cfg.spec.label_transfer.demo_words is not None:
        ensure_word_demo(cfg, cfg.spec.label_transfer.demo_words)
    out = {}
    manifests = ManifestStore(cfg.storage_root)
    for name, spec in cfg.datasets.items():
        plan = ingest.plan(name, spec, cfg.storage_root)
        out[name] = up_to_date(
            plan,
            manifests.read,
            tasks.ingest_task,
            scope=cfg.storage_root,
            fingerprint=plan.fingerprint,
            name=name,
            spec=spec,
            storage_root=cfg.storage_root,
            workers=cfg.spec.extraction.ingest_workers,
        )
    rows = [
        {
            "dataset": n,
            "rows": d["rows"],
            "ok": d["counts"]["ok"],
            "quarantined": sum(d["counts"]["quarantined"].values()),
            "duplicates": d["counts"]["duplicates"],
            "new": d["computed"],
        }
        for n, d in out.items()
    ]
    if any(d["computed"] for d in out.values()):  # artifacts report what a run did (see module docstring)
        create_table_artifact(rows, key="ingest",
                              description="Manifests: rows and quarantine counts per dataset")
    bad = [
        {"dataset": n, "reason": q["reason"], "count": q["count"], "examples": ", ".join(q["examples"])}
        for n, d in out.items()
        for q in d.get("quarantine", [])
    ]
    if bad:
        get_run_logger().warning(
            "quarantined images: %s", "; ".join(f"{q['dataset']}: {q['count']} x {q['reason']}" for q in bad)
        )
        if any(d["computed"] for d in out.values()):
            create_table_artifact(bad, key="quarantine", description="Quarantined images by reason")
    return out


def ensure_word_demo(cfg: RunConfig, demo) -> None:
    """The word-derived demo dataset (``label_transfer.demo_words``, docs/experiments.md), drawn from the
    profile's backbone embeddings of its words, before it is ingested."""
    word_demo.check(demo, cfg.datasets, f"profiles.{cfg.profile}.label_transfer.demo_words")
    bb_fp = labels.backbone_fingerprint(cfg.backbone)
    dataset = cfg.datasets[demo.dataset]
    up_to_date(word_demo.plan(demo, dataset, bb_fp), word_demo.read, tasks.word_demo_task,
               scope=cfg.storage_root, demo=demo, dataset=dataset, backbone=cfg.backbone,
               backbone_name=cfg.backbone_name, backbone_fp=bb_fp, storage_root=cfg.storage_root)


def ensure_features(cfg: RunConfig, manifests: dict[str, dict]) -> dict[str, FeatureStore]:
    """Pooled features (and, with ``patch_tokens``, the separate patch-token store) for every new image;
    features-only datasets are imported from their source instead (no encoder loaded)."""
    from pipelines.flows.import_features import ensure_imported

    only = {n: d for n, d in manifests.items() if cfg.datasets[n].features_only}
    images = {n: d for n, d in manifests.items() if n not in only}
    stores = {**ensure_imported(cfg, only), **(extract_output(cfg, images, "pooled") if images else {})}
    if cfg.encoder.patch_tokens and images:
        extract_output(cfg, images, "patches")
    return {n: stores[n] for n in manifests}


def extract_output(cfg: RunConfig, manifests: dict[str, dict], output: str) -> dict[str, FeatureStore]:
    """Extract one encoder output for images its store lacks: one mapped task per shard, then commit."""
    logger = get_run_logger()
    enc_fp = features.encoder_fingerprint(cfg.encoder)
    stores, plans = {}, []
    for name, desc in manifests.items():
        store = features.open_store(cfg.storage_root, cfg.encoder_name, name, enc_fp, output)
        stores[name] = store
        root, size = cfg.datasets[name].root, cfg.spec.extraction.shard_size
        plans += [(name, p) for p in features.plan_shards(Path(desc["manifest"]), root, store, size)]
    if not plans:
        logger.info("features: no image lacks its %s %s output", cfg.encoder_name, output)
        return stores
    total = sum(len(p.image_ids) for _, p in plans)
    logger.info("features: %d images in %d shards to extract (%s, %s)", total, len(plans), cfg.encoder_name,
                output)  # fmt: skip
    progress = ThrottledProgress(f"extract-{output}-progress", "Extraction (images %)")
    progress(0, total)
    # a shard file a killed run already renamed into place is adopted by the task itself
    task = tasks.extract_shards_task.with_options(
        retries=cfg.spec.extraction.retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=1),
        tags=gpu_tags(cfg.encoder.device, cfg.flows.gpu.tag),
    )
    results, failures = run_shard_groups(task, cfg, stores, plans, output, progress, total)
    for name, infos in results.items():
        tasks.commit_features_task(stores[name], infos, build_faiss=output == "pooled")
    rows = [extraction_row(n, i) for n, i in results.items()]
    create_table_artifact(rows, key=f"extract-{output}", description=f"Extraction with {cfg.encoder_name}")
    if failures:
        raise RuntimeError(
            f"feature extraction ({output}) failed for shard(s): "
            + "; ".join(failures)
            + " - rerun the flow to redo only these shards"
        )
    return stores


def shard_groups(plans: list[tuple[str, ShardPlan]], max_tasks: int) -> list[list[tuple[str, ShardPlan]]]:
    """Groups of consecutive shards of one dataset each (one task per group): about ``max_tasks`` groups
    (at most ``max_tasks`` + the number of datasets - 1, since a group never spans two datasets)."""
    per_task = max(1, -(-len(plans) // max_tasks))
    groups: list[list[tuple[str, ShardPlan]]] = []
    for name, plan in plans:
        if not groups or len(groups[-1]) == per_task or groups[-1][0][0] != name:
            groups.append([])
        groups[-1].append((name, plan))
    return groups


def run_shard_groups(task, cfg: RunConfig, stores: dict[str, FeatureStore], plans: list, output: str,
                     progress, total: int) -> tuple[dict[str, list[dict]], list[str]]:
    """Submit the shard groups with a bounded number in flight, keep only each group's small descriptors
    (futures are dropped once read), and collect failures; a failed group's shards that reached the disk
    are still committed."""
    groups = iter(shard_groups(plans, cfg.spec.extraction.max_tasks))
    window = 2 * (cfg.flows.task_runner.max_workers or 4)  # groups in flight (each runs its shards in turn)
    results: dict[str, list[dict]] = {}
    failures: list[str] = []
    running: dict = {}
    done_rows = 0

    def submit() -> bool:
        group = next(groups, None)
        if group is None:
            return False
        name = group[0][0]
        fut = task.submit(spec=cfg.encoder, store=stores[name], plans=[p for _, p in group], output=output)
        running[fut] = group
        return True

    while len(running) < window and submit():
        pass
    while running:
        fut = next(as_completed(list(running)))
        group = running.pop(fut)
        name = group[0][0]
        try:
            results.setdefault(name, []).extend(fut.result())
        except Exception as exc:  # noqa: BLE001 - one group's failure must not lose the others
            store = stores[name]
            written = [p.name for _, p in group if store.shard_path(p.name).is_file()]
            lost = [p.name for _, p in group if p.name not in written]
            failures.append(", ".join(f"{name}/{n}" for n in lost) + f": {type(exc).__name__}: {exc}")
            results.setdefault(name, []).extend(store.shard_info(n) for n in written)
        del fut
        done_rows += sum(len(p.image_ids) for _, p in group)
        progress(done_rows, total)
        submit()
    return results, failures


def extraction_row(dataset: str, infos: list[dict]) -> dict:
    """One table-artifact row: shards, images, failures, throughput and device for a dataset's extraction."""
    images = sum(x["rows"] for x in infos)
    peaks = [x["peak_gpu_memory_mb"] for x in infos if x.get("peak_gpu_memory_mb") is not None]
    return {
        "dataset": dataset,
        "shards": len(infos),
        "images": images,
        "failed": sum(x["failed"] for x in infos),
        "img_per_s": round(images / max(sum(x["seconds"] for x in infos), 1e-9), 1),
        "device": next((x["device"] for x in infos if x.get("device")), "cpu"),
        "peak_gpu_memory_mb": max(peaks) if peaks else None,
    }


def feature_hashes(stores: dict[str, FeatureStore]) -> dict[str, str]:
    out = {}
    for name, store in stores.items():
        data = store.manifest()
        if data is None:
            raise RuntimeError(f"feature store for {name} is incomplete; run extract-features")
        out[name] = data["content_hash"]
    return out


def ensure_labels(cfg: RunConfig, manifests: dict[str, dict]) -> dict:
    pairs = labels.label_pairs(cfg.datasets, {n: d["manifest"] for n, d in manifests.items()})
    bb_fp = labels.backbone_fingerprint(cfg.backbone)
    store = LabelStore(cfg.storage_root)
    plan = labels.plan(cfg.backbone, cfg.backbone_name, pairs, cfg.storage_root, bb_fp)
    desc = up_to_date(
        plan,
        store.read,
        tasks.embed_labels_task,
        scope=cfg.storage_root,
        fingerprint=bb_fp,
        spec=cfg.backbone,
        backbone_name=cfg.backbone_name,
        pairs=pairs,
        storage_root=cfg.storage_root,
    )
    if desc["computed"]:
        create_table_artifact(
            [
                {
                    "backbone": cfg.backbone_name,
                    "texts": len(pairs),
                    "dim": desc.get("dim"),
                    "index": str(desc.get("index", {}).get("type", "")),
                    "new": desc["computed"],
                }
            ],
            key="embed-labels",
            description="Label embeddings",
        )
    if cfg.spec.vocabulary_table:
        vocab = up_to_date(
            store.plan_vocabulary(cfg.backbone_name, bb_fp),
            store.read,
            tasks.embed_vocabulary_task,
            scope=cfg.storage_root,
            fingerprint=bb_fp,
            spec=cfg.backbone,
            backbone_name=cfg.backbone_name,
            storage_root=cfg.storage_root,
        )
        desc = {**desc, "vocabulary_table": vocab["table"]}
    return desc


def ensure_training(cfg: RunConfig, manifests: dict, stores: dict, label_desc: dict) -> dict:
    held_in = {n: s for n, s in cfg.datasets.items() if cfg.roles[n] == "held_in"}
    fp = train_stage.train_fingerprint(
        held_in,
        {n: manifests[n]["content_hash"] for n in held_in},
        feature_hashes({n: stores[n] for n in held_in}),
        label_desc["fingerprint"],
        cfg.spec.training,
    )
    plan = train_stage.plan(cfg.storage_root, cfg.encoder_name, cfg.backbone_name, fp)
    out_dir = plan.path
    progress = ThrottledProgress("train-progress", "Projector epochs (%)", interval_s=0.0)
    epochs = cfg.spec.training.epochs
    if not plan.complete:
        progress(0, epochs)

    def on_epoch(m: dict) -> None:
        progress(m.get("epoch", 0), epochs)

    desc = up_to_date(
        plan,
        RunStore(cfg.storage_root).read,
        tasks.train_task,
        scope=cfg.storage_root,
        held_in=held_in,
        manifests={n: manifests[n]["manifest"] for n in held_in},
        stores={n: stores[n] for n in held_in},
        label_table=label_desc["table"],
        spec=cfg.spec.training,
        out_dir=out_dir,
        on_epoch=on_epoch,
        memory_cap_mb=cfg.spec.memory_cap_mb,
    )
    if desc["computed"]:
        create_table_artifact(
            [{k: v for k, v in desc.items() if isinstance(v, int | float | str)}],
            key="train-projector",
            description="Projector training",
        )
    return desc


def ensure_evaluation(
    cfg: RunConfig, manifests: dict, stores: dict, label_desc: dict, train_desc: dict
) -> dict:
    which = cfg.spec.evaluation.checkpoint
    fp = evaluate_stage.eval_fingerprint(
        train_desc["run_dir"],
        which,
        label_desc["fingerprint"],
        cfg.datasets,
        cfg.roles,
        {n: d["content_hash"] for n, d in manifests.items()},
        feature_hashes(stores),
    )
    plan = evaluate_stage.plan(Path(train_desc["run_dir"]), fp)
    out_dir = plan.path
    desc = up_to_date(
        plan,
        EvaluationStore(cfg.storage_root).read,
        tasks.evaluate_task,
        scope=cfg.storage_root,
        run_dir=Path(train_desc["run_dir"]),
        which=which,
        datasets=cfg.datasets,
        roles=cfg.roles,
        manifests={n: d["manifest"] for n, d in manifests.items()},
        stores=stores,
        label_table=label_desc["table"],
        out_dir=out_dir,
        tsne=cfg.spec.evaluation.tsne,
        memory_cap_mb=cfg.spec.memory_cap_mb,
    )
    if desc["computed"]:
        publish_report(desc)
    return desc


def publish_report(desc: dict) -> None:
    from prefect.artifacts import create_markdown_artifact

    summary = desc.get("summary", {})
    rows = [
        {"dataset": n, **{k: v for k, v in d.items() if isinstance(v, int | float | str)}}
        for n, d in summary.get("datasets", {}).items()
    ]
    if rows:
        create_table_artifact(rows, key="evaluation", description="Accuracy per dataset (own label set)")
    if (markdown := report_markdown(Path(desc["report_dir"]))) is not None:
        create_markdown_artifact(
            markdown, key="evaluation-report", description=f"Report: {desc['report_dir']}"
        )
