"""embed-labels: embed the profile's label texts with its language backbone (no image is touched)."""

from __future__ import annotations

from prefect import flow

from pipelines.flows.steps import config_from, ensure_labels, ensure_manifests


@flow(name="embed-labels")
def embed_labels(
    config: str = "flows.yaml", profile: str = "demo", overrides: list[str] | None = None
) -> dict:
    """Label table + FAISS index for (backbone, label texts, templates)."""
    cfg = config_from(config, profile, overrides)
    return ensure_labels(cfg, ensure_manifests(cfg))
