"""Named models: flows.yaml's ``encoders:``/``backbones:`` plus the backbones added with ``tinyemo backbone
add``, resolved by one function each.

flows.yaml is the single source of truth for what a name means. ``tinyemo backbone add NAME_OR_PATH`` records
new backbones in ``<storage_root>/backbones.yaml`` (a file this tool owns, next to the stores it describes, so
every host sharing the store sees it and the user's commented flows.yaml is never rewritten); a name defined
in flows.yaml always wins over a recorded one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import yaml

from tinyemo_core.encoders.specs import BackboneSpec, VisionEncoderSpec
from tinyemo_core.errors import ConfigError
from tinyemo_core.store.atomic import write_atomic
from tinyemo_core.store.backbones import registry_path


class FlowsFile(Protocol):
    """What the registry reads of a validated flows.yaml (:class:`tinyemo_core.config.FlowsFile`)."""

    encoders: dict[str, VisionEncoderSpec]
    backbones: dict[str, BackboneSpec]


class UnknownModel(KeyError):
    """A model name that neither flows.yaml nor the backbone registry defines."""

    def __str__(self) -> str:
        return str(self.args[0])


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


def record_backbone(storage_root: Path, name: str, spec: BackboneSpec) -> Path:
    """Add or replace ``name`` in the registry (atomically)."""
    path = registry_path(storage_root)
    data = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    entries = data.setdefault("backbones", {})
    entries[name] = {**spec.model_dump(mode="json", exclude_defaults=True, exclude_none=True),
                     "source": spec.source, "added": datetime.now(UTC).isoformat(timespec="seconds")}
    text = ("# Language backbones added with `tinyemo backbone add` (owned by tinyemo).\n"
            + yaml.safe_dump(data, sort_keys=False))
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def backbones(flows: FlowsFile, storage_root: Path | None = None) -> dict[str, BackboneSpec]:
    """Every backbone a name can refer to: the registry's, overridden by flows.yaml's."""
    recorded = read_registry(storage_root) if storage_root is not None else {}
    return {**recorded, **flows.backbones}


def encoder_spec(flows: FlowsFile, name: str) -> VisionEncoderSpec:
    """The vision encoder ``name`` of flows.yaml."""
    if name not in flows.encoders:
        raise UnknownModel(f"unknown encoder {name!r} (known: {', '.join(flows.encoders)})")
    return flows.encoders[name].model_copy(deep=True)


def backbone_spec(flows: FlowsFile, name: str, storage_root: Path | None = None) -> BackboneSpec:
    """The backbone ``name`` of flows.yaml or of the registry under ``storage_root``."""
    known = backbones(flows, storage_root)
    if name not in known:
        raise UnknownModel(f"unknown backbone {name!r} (known: {', '.join(known)}); add it under backbones: "
                           f"in flows.yaml or run `tinyemo backbone add {name}`")
    return known[name].model_copy(deep=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.").lower() or "backbone"


def resolve_backbone(name_or_path: str, flows: FlowsFile, name: str | None = None,
                     base: Path | None = None) -> tuple[str, BackboneSpec]:
    """Turn ``NAME_OR_PATH`` into (registry name, spec).

    Order: a backbone named in flows.yaml, an existing local folder (a checkpoint with ``*.safetensors``),
    then a hub id (``org/model``) or a ``random:``/``package:`` source.
    """
    if name_or_path in flows.backbones:
        return name or name_or_path, flows.backbones[name_or_path].model_copy(deep=True)
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
    raise ConfigError(f"backbone {name_or_path!r}: not a flows.yaml backbone, local folder or hub id "
                      f"(org/model); known names: {', '.join(sorted(flows.backbones))}")
