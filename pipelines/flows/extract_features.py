"""extract-features: ingest (cached) then extract the profile's encoder features for new images only."""

from __future__ import annotations

from prefect import flow

from pipelines.flows.steps import config_from, ensure_features, ensure_manifests, feature_hashes


@flow(name="extract-features")
def extract_features(
    config: str = "flows.yaml", profile: str = "demo", overrides: list[str] | None = None
) -> dict:
    """Bring every dataset's feature store up to date for the profile's vision encoder."""
    cfg = config_from(config, profile, overrides)
    stores = ensure_features(cfg, ensure_manifests(cfg))
    return {"stores": {n: str(s.root) for n, s in stores.items()}, "content_hashes": feature_hashes(stores)}
