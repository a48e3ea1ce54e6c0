"""Smoke runs (``tinyemo run FLOW --profile P --smoke``): the profile exactly as written, except that every
dataset it reads is a few generated images in that dataset's own on-disk layout (:mod:`.datasets`) and every
model a tiny random model of the same architecture family from :mod:`tinyemo_core.tinymodels`.

:func:`prepare` writes ``<storage_root>/smoke/<profile>/flows.yaml`` (the user's flows.yaml with the overrides
applied, then roots and model references swapped) next to the generated data, and marks that folder with
``.tinyemo-smoke.json`` so a smoke store is never mistaken for a real one (``tinyemo status`` lists it as
smoke; a real run refuses a smoke storage root). Served models (an OpenAI-compatible ``base_url``) become a
tiny model of the same family served on a free loopback port under the same model id; the caller starts those
servers (:attr:`SmokePlan.servers`) for the length of the run. Tiny models are built once per family under
``<storage_root>/smoke/_models/`` and shared by every profile.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tinyemo_core.config import RunConfig, apply_overrides
from tinyemo_core.errors import ConfigError
from tinyemo_core.generate.bunny import convert_bunny
from tinyemo_core.net import free_port
from tinyemo_core.preflight import ALL_PARTS, BASE, FLOW_PARTS, RUN_MODELS, SMOKE_MARKER
from tinyemo_core.preflight.resources import cuda_available
from tinyemo_core.registry import backbones
from tinyemo_core.smoke.datasets import write_layout
from tinyemo_core.stages.ingest import demo_data_root
from tinyemo_core.tinymodels import FAMILIES, build_tiny, family_for, tiny_info

__all__ = ["SMOKE_MARKER", "ServedModel", "SmokeError", "SmokePlan", "is_smoke_root", "prepare", "smoke_root",
           "smoke_roots"]

SMOKE_DIR = "smoke"
MODELS_DIR = "_models"
DATA_VERSION = 1


class SmokeError(ConfigError):
    """The profile names something a smoke run cannot stand in for (the message says what and why)."""


@dataclass(frozen=True)
class ServedModel:
    """A tiny model to serve at ``base_url`` under ``served_name`` (the profile's model id) during the run."""

    folder: Path
    served_name: str
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@dataclass
class SmokePlan:
    config_path: Path
    root: Path
    servers: list[ServedModel] = field(default_factory=list)
    replaced: list[dict[str, str]] = field(default_factory=list)  # field, original, stand-in


def smoke_root(storage_root: Path, profile: str) -> Path:
    return Path(storage_root) / SMOKE_DIR / profile


def is_smoke_root(path: Path) -> bool:
    return (Path(path) / SMOKE_MARKER).is_file()


def smoke_roots(storage_root: Path) -> dict[str, Path]:
    """profile -> smoke store root, for every smoke run prepared under ``storage_root``."""
    folder = Path(storage_root) / SMOKE_DIR
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_dir() and is_smoke_root(p)}


# --- models ------------------------------------------------------------------------------------------------
class _Models:
    """Builds (once) and hands out tiny same-family stand-ins, recording every swap."""

    def __init__(self, folder: Path, plan: SmokePlan) -> None:
        self.folder, self.plan = folder, plan

    def family(self, ref: str, where: str) -> str:
        found = family_for(ref) or _closed_stand_in(ref)
        if found is None:
            raise SmokeError(f"{where}: no tiny family stands in for {ref!r} (tinyemo_core.tinymodels knows "
                             f"{', '.join(FAMILIES)}); a smoke run cannot replace it")
        return found

    def folder_for(self, ref: str, where: str) -> Path:
        family = self.family(ref, where)
        out = build_tiny(family, self.folder / family)
        self.plan.replaced.append({"field": where, "original": ref, "stand_in": f"tiny {family}: {out}"})
        return out

    def served(self, ref: str, where: str) -> ServedModel:
        """A tiny model of ``ref``'s family that a transformers server can load (Bunny: converted to LLaVA,
        the route docs/generation.md gives for serving Bunny with vLLM)."""
        folder = self.folder_for(ref, where)
        if self.family(ref, where) == "bunny":
            converted = self.folder / "bunny-llava"
            if not (converted / "config.json").is_file():  # its SigLIP is the folder next to it
                convert_bunny(folder, converted, vision_tower=str(folder / "siglip"))
            folder = converted
        server = ServedModel(folder, ref, free_port())
        self.plan.servers.append(server)
        return server


# Closed API models have no weights to shrink: a served tiny LLaVA-1.5 (Llama tokenizer) answers their
# text-only requests under the same model id (EmoVIT's GPT-4 writes Q&A from captions + attributes)
CLOSED_TEXT_MODELS = ("gpt-4", "gpt-3.5", "gpt-4o", "o1", "claude")
CLOSED_STAND_IN = "llava-1.5"


def _closed_stand_in(ref: str) -> str | None:
    return CLOSED_STAND_IN if ref.lower().startswith(CLOSED_TEXT_MODELS) else None


def _without_cuda(block: dict[str, Any], keys: tuple[str, ...], where: str,
                  plan: SmokePlan) -> dict[str, Any]:
    """4-bit loading needs CUDA + bitsandbytes; a smoke run on a CPU host loads full precision (recorded)."""
    if cuda_available():
        return block
    for key in keys:
        if block.get(key):
            block = {**block, key: False}
            plan.replaced.append({"field": f"{where}.{key}", "original": "true",
                                  "stand_in": "false (no CUDA here: 4-bit needs bitsandbytes on CUDA)"})
    return block


def _optional(needed: bool, replace: Any, entry: dict[str, Any], *args: Any) -> dict[str, Any]:
    """``replace(entry, *args)``; for a block the flow does not touch, a missing tiny family leaves the
    entry as written (the flow never loads it) instead of stopping the smoke run."""
    try:
        return replace(entry, *args)
    except SmokeError:
        if needed:
            raise
        return entry


def _encoder(entry: dict[str, Any], name: str, models: _Models) -> dict[str, Any]:
    if int(entry.get("num_workers") or 0) > 0:  # decode workers: how, not what (features are the same)
        models.plan.replaced.append({"field": f"encoders.{name}.num_workers",
                                     "original": str(entry["num_workers"]),
                                     "stand_in": "0 (a few images: one decode thread, no worker processes)"})
        entry = {**entry, "num_workers": 0}
    if entry.get("kind", "open_clip") == "open_clip":
        if entry.get("pretrained") is None:
            return entry  # seeded random init already: tiny or not, nothing to download

        folder = models.folder_for(str(entry["model"]), f"encoders.{name}")
        info = tiny_info(folder).get("open_clip") or {}
        if not info:
            raise SmokeError(f"encoders.{name}: the tiny {entry['model']} has no open_clip entry")
        return {**entry, "model": info["model"], "config_file": info["config_file"],
                "pretrained": info["pretrained"]}
    return {**entry, "model": str(models.folder_for(str(entry["model"]), f"encoders.{name}")),
            "revision": None}


def _backbone(entry: dict[str, Any], name: str, models: _Models) -> dict[str, Any]:
    source = str(entry["source"])
    if source.startswith(("random:", "package:")):
        return entry
    folder = str(models.folder_for(source, f"backbones.{name}"))
    out = {**entry, "source": folder, "revision": None}
    if entry.get("tokenizer"):  # OpenELM's Llama-2 tokenizer: the tiny folder ships the family's stand-in
        out["tokenizer"] = folder
    return out


# Random weights never stop before max_tokens, never ask a question, may "refuse": the answers they write
# would all be rejected and the chain would stop at the first export. Smoke runs accept them (recorded).
SMOKE_VALIDATION = {"reject_truncated": False, "require_question_mark": False, "refusal_patterns": []}


# Random weights never write an end-of-text token: every answer runs to its length limit, the one cost that
# grows with the profile's numbers (EmoVIT's 1,024-token GPT-4 answers). Smoke runs cap generated lengths.
SMOKE_MAX_TOKENS = 16


def _cap(block: dict[str, Any], key: str, default: int, where: str, plan: SmokePlan) -> dict[str, Any]:
    written = int(block.get(key) or default)
    if written <= SMOKE_MAX_TOKENS:
        return block
    plan.replaced.append({"field": f"{where}.{key}", "original": str(written),
                          "stand_in": f"{SMOKE_MAX_TOKENS} (random weights never stop early)"})
    return {**block, key: SMOKE_MAX_TOKENS}


def _generation(gen: dict[str, Any], where: str, models: _Models) -> dict[str, Any]:
    gen = _cap(dict(gen), "max_tokens", 64 if "captioner" in where else 256, where, models.plan)
    if "captioner" not in where:
        written = dict(gen.get("validation") or {})
        gen["validation"] = {**written, **SMOKE_VALIDATION}
        models.plan.replaced.append({"field": f"{where}.validation", "original": json.dumps(written),
                                     "stand_in": json.dumps(gen["validation"]) + " (random weights)"})
    backend = gen.get("backend", "openai")
    if backend == "openai":
        server = models.served(str(gen["model"]), f"{where}.model")
        gen["base_url"] = server.base_url
    elif backend == "transformers" and gen.get("model") != "tiny":
        gen["model"] = str(models.folder_for(str(gen["model"]), f"{where}.model"))
    if isinstance(gen.get("captioner"), dict):
        gen["captioner"] = _generation({"backend": "transformers", **gen["captioner"]}, f"{where}.captioner",
                                       models)
    return gen


def _reasoning(spec: dict[str, Any], where: str, models: _Models) -> dict[str, Any]:
    spec = dict(spec)
    model = dict(spec.get("model") or {})
    if model.get("tiny") is None:
        for key in ("vision", "llm", "source"):
            if model.get(key):
                model[key] = str(models.folder_for(str(model[key]), f"{where}.model.{key}"))
        model["revision"] = None
    spec["model"] = model
    spec["reason"] = _cap(dict(spec.get("reason") or {}), "max_new_tokens", 128, f"{where}.reason",
                          models.plan)
    for stage in ("pretrain", "finetune", "normal"):
        block = spec.get(stage)
        if isinstance(block, dict) and isinstance(block.get("train"), dict) and isinstance(
            block["train"].get("lora"), dict
        ):
            lora = _without_cuda(block["train"]["lora"], ("quantize_4bit",), f"{where}.{stage}.train.lora",
                                 models.plan)
            spec[stage] = {**block, "train": {**block["train"], "lora": lora}}
    return spec


# --- datasets ----------------------------------------------------------------------------------------------
def _dataset_names(cfg: RunConfig) -> list[str]:
    names = list(cfg.datasets)
    spec = cfg.spec
    for extra in ((spec.generation.datasets if spec.generation else []),
                  (spec.evaluate_generated.datasets if spec.evaluate_generated else []),
                  ([spec.interpret.dataset] if spec.interpret and spec.interpret.dataset else [])):
        names += [n for n in extra if n not in names]
    return [n for n in names if n in cfg.flows.datasets]


def _smoke_dataset(entry: dict[str, Any], name: str, data_root: Path) -> dict[str, Any]:
    folder = data_root / name
    params = {"version": DATA_VERSION, "layout": entry["layout"], "taxonomy": entry.get("taxonomy")}
    marker = folder / SMOKE_MARKER
    if not (marker.is_file() and json.loads(marker.read_text()) == params):
        tmp = data_root / f".{name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        taxonomy = entry.get("taxonomy")
        write_layout(entry["layout"], tmp, name=name, taxonomy=None if taxonomy == "open" else taxonomy)
        (tmp / SMOKE_MARKER).write_text(json.dumps(params))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    out = {k: v for k, v in entry.items() if k != "features"}  # images, not an imported feature cache
    return {**out, "root": str(folder)}


def prepare(cfg: RunConfig, overrides: list[str], flow: str | None = None) -> SmokePlan:
    """Write the smoke copy of ``cfg``'s profile (data, tiny models, flows.yaml); see the module docstring.
    The grid's encoders and backbones (Table IV) are replaced only for ``encoder-backbone-grid``."""
    root = smoke_root(cfg.storage_root, cfg.profile)
    root.mkdir(parents=True, exist_ok=True)
    (root / SMOKE_MARKER).write_text(json.dumps({
        "profile": cfg.profile, "config": str(cfg.config_path), "overrides": overrides,
        "prepared": datetime.now(UTC).isoformat(timespec="seconds")}, indent=2))
    plan = SmokePlan(config_path=root / "flows.yaml", root=root)
    models = _Models(cfg.storage_root / SMOKE_DIR / MODELS_DIR, plan)
    data = apply_overrides(yaml.safe_load(cfg.config_path.read_text()) or {}, cfg.profile, overrides)
    base = cfg.config_path.parent
    data["storage_root"] = str(root)
    datasets = data["datasets"] = {k: dict(v) for k, v in data["datasets"].items()}
    demo_root = demo_data_root(cfg.storage_root)
    for name in _dataset_names(cfg):
        entry = datasets[name]
        if entry.get("root") is not None:
            where = Path(entry["root"])
            where = where if where.is_absolute() else (base / where).resolve()
            if cfg.spec.demo_data is not None and where.is_relative_to(demo_root):
                datasets[name] = {**entry, "root": str(demo_data_root(root) / where.relative_to(demo_root))}
                continue  # the run generates the demo datasets itself
        datasets[name] = _smoke_dataset(entry, name, root / "data")
    profile = data["profiles"][cfg.profile] = dict(data["profiles"][cfg.profile])
    spec = cfg.spec
    parts = ALL_PARTS if flow is None else FLOW_PARTS.get(flow, BASE)
    grid = spec.grid if spec.grid is not None and flow == "encoder-backbone-grid" else None
    encoders = {spec.encoder, *(grid.encoders if grid else [])}
    judged_spec = spec.evaluate_generated
    if judged_spec is not None and judged_spec.clipscore is not None and judged_spec.clipscore.encoder:
        encoders.add(judged_spec.clipscore.encoder)  # CLIPScore's own CLIP (Hessel et al.'s ViT-B/32)
    if spec.reasoning is not None and spec.reasoning.patch_encoder:
        encoders.add(spec.reasoning.patch_encoder)
    scorer = judged_spec.clipscore.encoder if judged_spec and judged_spec.clipscore else None
    data["encoders"] = dict(data["encoders"])
    for name in sorted(encoders):
        needed = name != scorer or name == spec.encoder or "evaluate_generated" in parts
        data["encoders"][name] = _optional(needed, _encoder, dict(data["encoders"][name]), name, models)
    data["backbones"] = dict(data.get("backbones") or {})
    for name in sorted({spec.backbone, *(grid.backbones if grid else [])}):
        entry = data["backbones"].get(name) or cfg.flows.backbones.get(name)
        if entry is None:  # a registered backbone (`tinyemo backbone add`): copy it in
            entry = backbones(cfg.flows, cfg.storage_root)[name].model_dump(exclude_none=True)
        data["backbones"][name] = _backbone(dict(entry), name, models)
    where = f"profiles.{cfg.profile}"
    if isinstance(profile.get("generation"), dict):
        profile["generation"] = _optional("generation" in parts, _generation, profile["generation"],
                                          f"{where}.generation", models)
    if isinstance(profile.get("reasoning"), dict):
        profile["reasoning"] = _optional("reasoning" in parts, _reasoning, profile["reasoning"],
                                         f"{where}.reasoning", models)
    judged = profile.get("evaluate_generated")
    if isinstance(judged, dict) and "evaluate_generated" in parts:
        judged = _without_cuda(judged, ("load_in_4bit",), f"{where}.evaluate_generated", plan)
        judged = _cap(judged, "max_tokens", 128, f"{where}.evaluate_generated", plan)
        if isinstance(judged.get("clipscore"), dict):
            judged = {**judged, "clipscore": _cap(judged["clipscore"], "max_tokens", 128,
                                                  f"{where}.evaluate_generated.clipscore", plan)}
        if judged.get("model") not in (None, *RUN_MODELS) and not (
            str(judged["model"]).startswith(("/", ".", "~"))
        ):
            server = models.served(str(judged["model"]), f"{where}.evaluate_generated.model")
            judged = {**judged, "base_url": server.base_url}
        profile["evaluate_generated"] = judged
    plan.config_path.write_text(
        "# Written by `tinyemo run --smoke` (tinyemo_core.smoke): not a real profile; its stores are smoke.\n"
        + yaml.safe_dump(data, sort_keys=False))
    (root / "replaced.json").write_text(json.dumps(plan.replaced, indent=2))
    return plan
