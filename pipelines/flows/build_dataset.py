"""build-dataset: every stage in order: demo data, ingest, extract features, embed labels, train, evaluate."""

from __future__ import annotations

from prefect import flow

from pipelines.flows.steps import (
    config_from,
    ensure_evaluation,
    ensure_features,
    ensure_labels,
    ensure_manifests,
    ensure_training,
)


@flow(name="build-dataset", log_prints=True)
def build_dataset(
    config: str = "flows.yaml", profile: str = "demo", overrides: list[str] | None = None
) -> dict:
    """Run the whole TinyEmo classification pipeline; every stage is cached by content fingerprint."""
    cfg = config_from(config, profile, overrides)
    manifests = ensure_manifests(cfg)
    stores = ensure_features(cfg, manifests)
    label_desc = ensure_labels(cfg, manifests)
    train_desc = ensure_training(cfg, manifests, stores, label_desc)
    eval_desc = ensure_evaluation(cfg, manifests, stores, label_desc, train_desc)
    return {
        "manifests": {n: d["manifest"] for n, d in manifests.items()},
        "labels": label_desc["table"],
        "run_dir": train_desc["run_dir"],
        "report_dir": eval_desc["report_dir"],
        "summary": eval_desc.get("summary", {}),
    }
