"""New language backbones over time: register one, announce it with a Prefect event, re-embed only its labels.

``tinyemo backbone add NAME_OR_PATH`` records the backbone in ``<storage_root>/backbones.yaml`` (a registry
this tool owns, next to the stores it describes, so every host sharing the store sees it and the user's
commented flows.yaml is never rewritten) and emits the event ``tinyemo.backbone.added``. A deployment of the
``backbone-added`` flow with a trigger on that event then embeds the label texts with the new backbone, trains
its projector from the cached image features, evaluates it and publishes a comparison table of every backbone.
No image is read: the flow opens the feature stores and fails (naming the missing store) if one is incomplete,
rather than extracting (the architecture's contract: adding a backbone never touches an image).
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from tinyemo_core.config import ConfigError, FlowsFile, load_config, load_flows
from tinyemo_core.encoders.specs import BACKBONE_PRESETS, BackboneSpec
from tinyemo_core.store.atomic import read_json

EVENT = "tinyemo.backbone.added"
REGISTRY_FILE = "backbones.yaml"
# The trigger a backbone-added deployment declares (see flows.yaml ``deployments:`` and docs/operations.md).
TRIGGER = {"expect": [EVENT], "parameters": {"backbone": "{{ event.payload.backbone }}"}}


def registry_path(storage_root: Path) -> Path:
    return Path(storage_root) / REGISTRY_FILE


def read_registry(storage_root: Path) -> dict[str, BackboneSpec]:
    """Backbones added with ``tinyemo backbone add`` (empty when none yet)."""
    path = registry_path(storage_root)
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    out = {}
    for name, entry in (data.get("backbones") or {}).items():
        fields = {k: v for k, v in entry.items() if k != "added"}
        out[name] = BackboneSpec.model_validate(fields)
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.").lower() or "backbone"


def resolve_backbone(name_or_path: str, flows: FlowsFile, name: str | None = None,
                     base: Path | None = None) -> tuple[str, BackboneSpec]:
    """Turn ``NAME_OR_PATH`` into (registry name, spec).

    Order: a backbone named in flows.yaml, a built-in preset, an existing local folder (a checkpoint with
    ``*.safetensors``), then a hub id (``org/model``) or a ``random:``/``package:`` source.
    """
    if name_or_path in flows.backbones:
        return name or name_or_path, flows.backbones[name_or_path]
    if name_or_path in BACKBONE_PRESETS:
        return name or name_or_path, BACKBONE_PRESETS[name_or_path].model_copy(deep=True)
    local = Path(name_or_path).expanduser()
    if not local.is_absolute() and base is not None and (base / local).exists():
        local = base / local
    if local.exists():
        if not local.is_dir():
            raise ConfigError(f"{name_or_path}: a backbone path must be a model folder "
                              "(config.json, weights)")
        return name or _slug(local.resolve().name), BackboneSpec(source=str(local.resolve()))
    if "/" in name_or_path or name_or_path.startswith(("random:", "package:")):
        return name or _slug(name_or_path.split("/")[-1].split(":")[-1]), BackboneSpec(source=name_or_path)
    known = sorted({*flows.backbones, *BACKBONE_PRESETS})
    raise ConfigError(f"backbone {name_or_path!r}: not a flows.yaml backbone, preset, local folder or hub id "
                      f"(org/model); known names: {', '.join(known)}")


def record_backbone(storage_root: Path, name: str, spec: BackboneSpec) -> Path:
    """Add or replace ``name`` in the registry (written to a temporary file and renamed into place)."""
    path = registry_path(storage_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    entries = data.setdefault("backbones", {})
    entries[name] = {**spec.model_dump(mode="json", exclude_defaults=True, exclude_none=True),
                     "source": spec.source, "added": datetime.now(UTC).isoformat(timespec="seconds")}
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text("# Language backbones added with `tinyemo backbone add` (owned by tinyemo).\n"
                   + yaml.safe_dump(data, sort_keys=False))
    tmp.replace(path)
    return path


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


def backbone_overrides(name: str, flows: FlowsFile, registry: dict[str, BackboneSpec]) -> list[str]:
    """``--set`` overrides that make ``name`` the profile's backbone (defining it when only registered)."""
    if name in flows.backbones:
        return [f"backbone={name}"]
    if name not in registry:
        raise ConfigError(f"backbone {name!r} is neither in flows.yaml nor registered; "
                          f"run `tinyemo backbone add {name}` first")
    spec = json.dumps(registry[name].model_dump(mode="json", exclude_none=True))
    return [f"backbones.{name}={spec}", f"backbone={name}"]


def evaluated_runs(storage_root: Path, encoder_name: str) -> dict[str, dict]:
    """Newest evaluation per backbone for one encoder: {backbone: {"run", "report", "summary"}}."""
    out: dict[str, tuple[float, dict]] = {}
    for run in (Path(storage_root) / "runs").glob(f"{encoder_name}__*__*"):
        backbone = run.name.split("__")[1]
        for report in run.glob("eval-*/report.json"):
            data = read_json(report)
            mtime = report.stat().st_mtime
            if data is not None and (backbone not in out or mtime > out[backbone][0]):
                summary = data.get("summary", {})
                out[backbone] = (mtime, {"run": run.name, "report": str(report), "summary": summary})
    return {b: v for b, (_, v) in sorted(out.items())}


def comparison_rows(storage_root: Path, encoder_name: str) -> list[dict[str, Any]]:
    """One row per backbone: held-in mean, zero-shot mean, total (TinyEmo Table III columns), per dataset."""
    rows = []
    for backbone, info in evaluated_runs(storage_root, encoder_name).items():
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
    done = evaluated_runs(storage_root, encoder_name)
    return [n for n in names if n not in done]


def _cached_stores(cfg, manifests: dict[str, dict]) -> dict:
    """Open the complete feature stores; raise (naming them) instead of extracting when one is missing."""
    from tinyemo_core.stages import features

    enc_fp = features.encoder_fingerprint(cfg.encoder)
    stores = {n: features.open_store(cfg.storage_root, cfg.encoder_name, n, enc_fp) for n in manifests}
    missing = [n for n, s in stores.items() if s.manifest() is None]
    if missing:
        raise RuntimeError(f"no complete {cfg.encoder_name} feature store for {', '.join(missing)}: a new "
                           "backbone never extracts images; run `tinyemo run extract-features` (or "
                           "build-dataset) first")
    return stores


@flow(name="backbone-added", log_prints=True)
def backbone_added(config: str = "flows.yaml", profile: str = "demo", overrides: list[str] | None = None,
                   backbone: str | None = None) -> dict:
    """Re-embed labels, train and evaluate for ``backbone`` (or, when ``None``, for every registered backbone
    without an evaluated run), from cached image features only; publish a comparison of all backbones."""
    from pipelines.common import (
        config_from,
        ensure_evaluation,
        ensure_labels,
        ensure_manifests,
        ensure_training,
    )

    logger = get_run_logger()
    base = load_config(config, profile, overrides or [])
    registry = read_registry(base.storage_root)
    if backbone:
        todo = [backbone]
    else:
        todo = backbones_without_run(base.storage_root, base.encoder_name, list(registry))
        logger.info("re-check: %d registered backbone(s) without a run: %s", len(todo),
                    ", ".join(todo) or "-")
    results = {}
    for name in todo:
        extra = backbone_overrides(name, base.flows, registry)
        cfg = config_from(config, profile, [*(overrides or []), *extra])
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
