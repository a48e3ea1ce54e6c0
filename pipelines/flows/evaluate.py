"""evaluate: score the profile's trained projector on every dataset's test split, write the report."""

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


@flow(name="evaluate")
def evaluate(config: str = "flows.yaml", profile: str = "demo", overrides: list[str] | None = None) -> dict:
    """Held-in and zero-shot accuracy per dataset against its own label set (trains first if needed)."""
    cfg = config_from(config, profile, overrides)
    manifests = ensure_manifests(cfg)
    stores = ensure_features(cfg, manifests)
    label_desc = ensure_labels(cfg, manifests)
    train_desc = ensure_training(cfg, manifests, stores, label_desc)
    return ensure_evaluation(cfg, manifests, stores, label_desc, train_desc)
