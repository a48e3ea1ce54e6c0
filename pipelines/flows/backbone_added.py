"""New language backbones over time: register one, announce it with a Prefect event, re-embed only its labels.

``tinyemo backbone add NAME_OR_PATH`` records the backbone in ``<storage_root>/backbones.yaml`` (see
:mod:`tinyemo_core.registry`) and emits the event ``tinyemo.backbone.added``. A deployment of the
``backbone-added`` flow with a trigger on that event then embeds the label texts with the new backbone, trains
its projector from the cached image features, evaluates it and publishes a comparison table of every backbone.
No image is read: the flow opens the feature stores and fails (naming the missing store) if one is incomplete,
rather than extracting (the architecture's contract: adding a backbone never touches an image).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from pipelines.runtime.memo import load_config_once
from tinyemo_core.config import load_config, load_flows
from tinyemo_core.encoders.specs import BackboneSpec
from tinyemo_core.registry import read_registry, record_backbone, resolve_backbone
from tinyemo_core.stages import features
from tinyemo_core.store.evaluations import newest_reports

EVENT = "tinyemo.backbone.added"
# The trigger a backbone-added deployment declares (see flows.yaml ``deployments:`` and docs/operations.md).
TRIGGER = {"expect": [EVENT], "parameters": {"backbone": "{{ event.payload.backbone }}"}}


def emit_backbone_added(name: str, spec: BackboneSpec, config: Path, profile: str) -> Any:
    """Emit ``tinyemo.backbone.added`` (resource ``tinyemo.backbone.<name>``) and wait until it is sent."""
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    resource = {"prefect.resource.id": f"tinyemo.backbone.{name}", "prefect.resource.name": name,
                "tinyemo.backbone.source": spec.source}
    event = emit_event(EVENT, resource=resource,
                       payload={"backbone": name, "config": str(config), "profile": profile})
    EventsWorker.drain_all(timeout=30)
    return event


def add_backbone(config: Path, name_or_path: str, name: str | None = None, profile: str = "demo",
                 emit: bool = True) -> tuple[str, BackboneSpec, Any]:
    """``tinyemo backbone add``: record the backbone, then emit the event (returns name, spec, event)."""
    config = Path(config).resolve()
    flows = load_flows(config, [], profile)
    storage_root = load_config(config, profile).storage_root
    backbone, spec = resolve_backbone(name_or_path, flows, name, base=config.parent)
    record_backbone(storage_root, backbone, spec)
    event = emit_backbone_added(backbone, spec, config, profile) if emit else None
    return backbone, spec, event


def comparison_rows(storage_root: Path, encoder_name: str) -> list[dict[str, Any]]:
    """One row per backbone: held-in mean, zero-shot mean, total (TinyEmo Table III columns), per dataset."""
    rows = []
    for backbone, info in newest_reports(storage_root, encoder_name).items():
        summary = info["summary"]
        row: dict[str, Any] = {"backbone": backbone, "run": info["run"]}
        for key in ("held_in_mean", "zero_shot_mean", "total"):
            row[key] = None if summary.get(key) is None else round(100 * summary[key], 2)
        for ds, d in sorted(summary.get("datasets", {}).items()):
            row[ds] = round(100 * d["accuracy"], 2)
        rows.append(row)
    return rows


def backbones_without_run(storage_root: Path, encoder_name: str, names: list[str]) -> list[str]:
    """The names among ``names`` with no evaluated projector run for ``encoder_name`` yet."""
    done = newest_reports(storage_root, encoder_name)
    return [n for n in names if n not in done]


def _cached_stores(cfg, manifests: dict[str, dict]) -> dict:
    """Open the complete feature stores; raise (naming them) instead of extracting when one is missing."""
    plans = {n: features.plan(cfg.storage_root, cfg.encoder_name, n, cfg.encoder) for n in manifests}
    missing = [n for n, p in plans.items() if not p.complete]
    if missing:
        raise RuntimeError(f"no complete {cfg.encoder_name} feature store for {', '.join(missing)}: a new "
                           "backbone never extracts images; run `tinyemo run extract-features` (or "
                           "build-dataset) first")
    enc_fp = features.encoder_fingerprint(cfg.encoder)
    return {n: features.open_store(cfg.storage_root, cfg.encoder_name, n, enc_fp) for n in manifests}


@flow(name="backbone-added", log_prints=True)
def backbone_added(config: str = "flows.yaml", profile: str = "demo", overrides: list[str] | None = None,
                   backbone: str | None = None) -> dict:
    """Re-embed labels, train and evaluate for ``backbone`` (or, when ``None``, for every registered backbone
    without an evaluated run), from cached image features only; publish a comparison of all backbones."""
    from pipelines.flows.steps import (
        config_from,
        ensure_evaluation,
        ensure_labels,
        ensure_manifests,
        ensure_training,
    )

    logger = get_run_logger()

    base = load_config_once(config, profile, overrides or [])
    registry = read_registry(base.storage_root)
    if backbone:
        todo = [backbone]
    else:
        todo = backbones_without_run(base.storage_root, base.encoder_name, list(registry))
        logger.info("re-check: %d registered backbone(s) without a run: %s", len(todo),
                    ", ".join(todo) or "-")
    results = {}
    for name in todo:
        cfg = config_from(config, profile, [*(overrides or []), f"backbone={name}"])
        manifests = ensure_manifests(cfg)
        stores = _cached_stores(cfg, manifests)
        label_desc = ensure_labels(cfg, manifests)
        train_desc = ensure_training(cfg, manifests, stores, label_desc)
        eval_desc = ensure_evaluation(cfg, manifests, stores, label_desc, train_desc)
        results[name] = {"run_dir": train_desc["run_dir"], "report_dir": eval_desc["report_dir"],
                         "summary": eval_desc.get("summary", {})}
    rows = comparison_rows(base.storage_root, base.encoder_name)
    if rows:
        create_table_artifact(rows, key="backbone-comparison",
                              description=f"Accuracy (%) per backbone with encoder {base.encoder_name}")
    return {"backbones": results, "comparison": rows}
