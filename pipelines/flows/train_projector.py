"""train-projector: train the Metric Projector from cached features and label embeddings."""

from __future__ import annotations

from prefect import flow

from pipelines.flows.steps import (
    config_from,
    ensure_features,
    ensure_labels,
    ensure_manifests,
    ensure_training,
)


@flow(name="train-projector")
def train_projector(
    config: str = "flows.yaml", profile: str = "demo", overrides: list[str] | None = None
) -> dict:
    """Upstream stores are brought up to date (cached), then the projector is trained unless already done."""
    cfg = config_from(config, profile, overrides)
    manifests = ensure_manifests(cfg)
    stores = ensure_features(cfg, manifests)
    return ensure_training(cfg, manifests, stores, ensure_labels(cfg, manifests))
