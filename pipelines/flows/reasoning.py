"""The hand-off to reasoning fine-tuning (TinyEmo §III-C; EmoVIT; LLaVA on EMOTIC).

- ``finetune-reasoning``: bring the recipe's exports up to date (generate-qa for tinyemo/emovit,
  emotic-exports for llava-emotic), then train the selected stages (stage 1 "pretrain": connector only;
  stage 2 "finetune": connector + LLM) with the one shared trainer. A finished stage is never retrained; a
  killed one resumes from its last checkpoint. Tasks carry the ``tinyemo-gpu`` tag when CUDA is visible.
- ``reason``: conditional reasoning over a dataset's test split (projector label -> conditioned prompt ->
  the fine-tuned model writes "Reasoning: ...\\nPredicted Label: ...").
- ``full-pipeline``: build-dataset, then both of the above (``make demo`` runs it on the demo profile).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from pipelines.flows.steps import (
    config_from,
    ensure_features,
    ensure_labels,
    ensure_manifests,
    ensure_training,
)
from pipelines.runtime.caching import CACHED, recorded, up_to_date
from pipelines.runtime.gpu import gpu_tags
from pipelines.runtime.progress import ThrottledProgress
from tinyemo_core.config import RunConfig
from tinyemo_core.finetune.recipes import recipe_info
from tinyemo_core.monitor import DeviceMonitor
from tinyemo_core.stages import features
from tinyemo_core.stages import finetune as finetune_stage
from tinyemo_core.stages import instructions as instructions_stage
from tinyemo_core.stages import reason as reason_stage
from tinyemo_core.store import finetune as finetune_store
from tinyemo_core.store.finetune import FinetuneStore, latest_model
from tinyemo_core.store.instructions import InstructionsStore
from tinyemo_core.store.plan import StorePlan
from tinyemo_core.store.reasoning import ReasoningStore, reasoning_markdown


def _spec(cfg: RunConfig):
    if cfg.spec.reasoning is None:
        raise ValueError(
            f"profiles.{cfg.profile}.reasoning is not set in {cfg.config_path}; add a reasoning: "
            "block (docs/reasoning.md)"
        )
    return cfg.spec.reasoning


def export_source(cfg: RunConfig) -> tuple[Path, Path]:
    """(export folder, image root) of the tinyemo/emovit recipes: ``instructions/<dataset>/``."""
    name = reason_stage.reasoning_dataset(cfg)
    return InstructionsStore(cfg.storage_root).path(name), Path(cfg.datasets[name].root)


def ensure_exports(cfg: RunConfig, manifests: dict[str, dict]) -> tuple[Path, Path]:
    """(export folder, image root) of the profile's recipe, brought up to date."""
    if recipe_info(_spec(cfg).recipe).exports == "emotic":  # trains on the EMOTIC person exports
        from pipelines.flows.emotic import ensure_emotic

        export = next(iter(ensure_emotic(cfg, manifests).values()))["export"]
        return Path(export["dir"]), Path(export["image_root"])
    if cfg.spec.generation is not None:  # without a generation block: exports already under instructions/
        from pipelines.flows.generate_qa import ensure_instructions

        ensure_instructions(cfg, manifests)
    name = reason_stage.reasoning_dataset(cfg)
    if cfg.spec.generation is None and cfg.datasets[name].layout == "affection":  # TinyEmo Table VI pairs
        manifest = Path(manifests[name]["manifest"])
        plan = instructions_stage.plan_affection(cfg.storage_root, name, manifest)
        up_to_date(plan, InstructionsStore(cfg.storage_root).read, affection_task, scope=cfg.storage_root,
                   plan=plan, manifest=manifest, storage_root=cfg.storage_root)
    return export_source(cfg)


@task(name="affection-exports", **CACHED)
@recorded
def affection_task(key: str, plan: StorePlan, manifest: Path, storage_root: Path) -> dict:
    return instructions_stage.build_affection(plan, manifest, storage_root)


def _patch_sources(cfg: RunConfig, spec, manifests: dict[str, dict]) -> list | None:
    """(patch store, manifest, dataset root) of the exports' dataset for ``reasoning.patch_encoder``; the
    stage uses it when complete (``cached_patches: auto``), else runs the live ViT."""
    if spec.patch_encoder is None:
        return None

    if spec.patch_encoder not in cfg.flows.encoders:
        raise ValueError(
            f"reasoning.patch_encoder: unknown encoder {spec.patch_encoder!r} "
            f"(known: {', '.join(cfg.flows.encoders)})"
        )
    name = reason_stage.reasoning_dataset(cfg)
    enc = cfg.flows.encoders[spec.patch_encoder]
    store = features.open_store(
        cfg.storage_root, spec.patch_encoder, name, features.encoder_fingerprint(enc), "patches"
    )
    return [(store, Path(manifests[name]["manifest"]), Path(cfg.datasets[name].root))]


def plan_models(cfg: RunConfig, spec, export_dir: Path, sources) -> dict[str, tuple[Any, StorePlan]]:
    """``stage -> (spec, plan)`` of every stage, plus ``"normal"`` (TinyEmo Fig. 9's normal model: stage 2
    from the same stage 1) when the profile asks for it; stage 1 is planned once."""
    plans: dict[str, tuple[Any, StorePlan]] = {}
    for stage in spec.stages:
        parent = plans["pretrain"][1] if stage == "finetune" and "pretrain" in plans else None
        plans[stage] = (spec, finetune_stage.plan_stage(cfg.storage_root, spec, export_dir, stage,
                                                        patch_sources=sources, parent=parent))
    normal = finetune_stage.normal_spec(spec)
    if normal is not None:
        parent = plans["pretrain"][1] if "pretrain" in plans else None
        plans["normal"] = (normal, finetune_stage.plan_stage(cfg.storage_root, normal, export_dir, "finetune",
                                                             patch_sources=sources, parent=parent))
    return plans


@task(name="finetune-stage", **CACHED)
@recorded
def finetune_stage_task(
    key: str, storage_root: Path, spec, export_dir: Path, image_root: Path, stage: str, plan: StorePlan,
    parent: StorePlan | None = None, patch_sources=None
) -> dict:
    progress = ThrottledProgress(f"finetune-{stage}-progress", f"Fine-tuning stage {stage} (steps %)")

    def on_progress(p: dict) -> None:
        if p.get("max_steps"):
            eta = p.get("eta_s")
            progress(
                p["step"],
                p["max_steps"],
                f"step {p['step']}/{p['max_steps']}, loss {p.get('loss', 0):.4f},"
                f" {p.get('tokens_per_s', 0):.0f} tok/s" + (f", ETA {eta:.0f} s" if eta else ""),
            )

    with DeviceMonitor() as monitor:
        desc = finetune_stage.run_stage(
            storage_root,
            spec,
            export_dir,
            image_root,
            stage,  # type: ignore[arg-type]
            patch_sources=patch_sources,
            on_progress=on_progress,
            plan=plan,
            parent=parent,
        )
    return {**desc, **monitor.summary()}


def ensure_finetune(cfg: RunConfig, spec, export_dir: Path, image_root: Path, sources,
                    chosen: list[str]) -> tuple[dict[str, dict], dict | None]:
    """Each chosen stage (then Fig. 9's normal model) up to date: (descriptors by stage, normal's)."""
    store, tags = FinetuneStore(cfg.storage_root), functools.partial(gpu_tags, "auto", cfg.flows.gpu.tag)
    plans = plan_models(cfg, spec, export_dir, sources)

    def bring(which: str, stage: str) -> dict:
        sspec, plan = plans[which]
        parent = plans["pretrain"][1] if stage == "finetune" and "pretrain" in plans else None
        if parent is not None:  # stage 1 may have been trained since it was planned
            parent = StorePlan(parent.fingerprint, parent.path, store.complete(parent.path))
        return up_to_date(plan, store.read, finetune_stage_task, scope=cfg.storage_root, tags=tags,
                          storage_root=cfg.storage_root, spec=sspec, export_dir=export_dir,
                          image_root=image_root, stage=stage, plan=plan, parent=parent, patch_sources=sources)

    out = {stage: bring(stage, stage) for stage in spec.stages if stage in chosen}
    normal = bring("normal", "finetune") if "normal" in plans and "finetune" in chosen else None
    return out, normal


@flow(name="finetune-reasoning")
def finetune_reasoning(
    config: str = "flows.yaml",
    profile: str = "demo",
    overrides: list[str] | None = None,
    stages: list[str] | None = None,
) -> dict[str, Any]:
    """Train the profile's reasoning recipe (``reasoning:`` in flows.yaml); ``stages`` picks some of them."""
    cfg = config_from(config, profile, overrides)
    spec = _spec(cfg)
    chosen = list(stages or spec.stages)
    if bad := [s for s in chosen if s not in spec.stages]:
        raise ValueError(f"stages {bad} are not in reasoning.stages {spec.stages}")
    manifests = ensure_manifests(cfg)
    export_dir, image_root = ensure_exports(cfg, manifests)
    sources = _patch_sources(cfg, spec, manifests)
    out, normal_desc = ensure_finetune(cfg, spec, export_dir, image_root, sources, chosen)
    rows = [{"stage": stage, **{k: v for k, v in desc.items() if isinstance(v, int | float | str | bool)}}
            for stage, desc in out.items()]
    if normal_desc is not None:
        rows.append({"stage": "finetune (normal, Fig. 9)",
                     **{k: v for k, v in normal_desc.items() if isinstance(v, int | float | str | bool)}})
    if any(d.get("computed") for d in [*out.values(), normal_desc or {}]):  # what this run trained
        create_table_artifact(rows, key="finetune-reasoning", description=f"Fine-tuning ({spec.recipe})")
    return {"recipe": spec.recipe, "stages": out, "model": out[chosen[-1]]["model"] if chosen else None,
            "normal_model": normal_desc["model"] if normal_desc else None}


def _profile_models(cfg: RunConfig, spec, manifests: dict[str, dict]) -> tuple[Path | None, Path | None]:
    """(stage-2 model, Fig. 9 normal model) of the profile when trained, by plan (not "latest": the normal
    model is a stage-2 model too); (None, None) when the exports are not there to plan from."""
    export_dir, _ = export_source(cfg)
    try:
        plans = plan_models(cfg, spec, export_dir, _patch_sources(cfg, spec, manifests))
    except FileNotFoundError:
        return None, None
    main, normal = plans[spec.stages[-1]][1], plans.get("normal", (None, None))[1]
    return (finetune_store.model_dir(main.path) if main.complete else None,
            finetune_store.model_dir(normal.path) if normal is not None and normal.complete else None)


TRAINED_MODELS = ("trained", "normal")  # evaluate_generated.model keywords (docs/judging.md)


def trained_model(cfg: RunConfig, which: str = "trained") -> Path:
    """``evaluate_generated.model: trained``: the profile's own fine-tuned model (tinyemo: the stage-2 model
    by plan, never Fig. 9's normal one; other recipes: the newest finished model of the recipe);
    ``normal``: TinyEmo Fig. 9's normal model (``reasoning.normal``)."""
    spec = _spec(cfg)
    planned = (_profile_models(cfg, spec, ensure_manifests(cfg))
               if recipe_info(spec.recipe).conditional_reasoning else (None, None))
    found = planned[1] if which == "normal" else (planned[0] or latest_model(cfg.storage_root, spec.recipe))
    if found is None:
        raise FileNotFoundError(f"evaluate_generated.model: {which}, but profile {cfg.profile!r} has no such "
                                "finished model yet: run `tinyemo run finetune-reasoning` first"
                                + (" (with reasoning.normal set)" if which == "normal" else ""))
    return found


@task(name="reason", **CACHED)
@recorded
def reason_task(key: str, cfg: RunConfig, dataset: str, run_dir: Path, model_dir: Path | None, spec,
                plan: StorePlan, manifest: Path, normal_dir: Path | None = None) -> dict:
    progress = ThrottledProgress("reason-progress", f"Conditional reasoning on {dataset}")

    def on_progress(p: dict) -> None:
        if p.get("total"):
            progress(p.get("done", 0), p["total"])

    with DeviceMonitor() as monitor:
        desc = reason_stage.reason_split(cfg, dataset, run_dir, model_dir, spec, on_progress, normal_dir,
                                         plan=plan, manifest=manifest)
    return {**desc, **monitor.summary()}


@flow(name="reason")
def reason(
    config: str = "flows.yaml",
    profile: str = "demo",
    overrides: list[str] | None = None,
    dataset: str | None = None,
    reasoner: str | None = None,
    condition: bool | None = None,
) -> dict:
    """Conditional reasoning over ``dataset``'s test split (default: the exports' dataset) with the profile's
    projector run and fine-tuned model (``reasoner``: another saved model folder)."""
    extra = [] if condition is None else [f"reasoning.reason.condition={str(condition).lower()}"]
    cfg = config_from(config, profile, [*(overrides or []), *extra])
    spec = _spec(cfg)
    manifests = ensure_manifests(cfg)
    stores = ensure_features(cfg, manifests)
    labels = ensure_labels(cfg, manifests)
    run_dir = Path(ensure_training(cfg, manifests, stores, labels)["run_dir"])
    conditional = recipe_info(spec.recipe).conditional_reasoning
    planned, normal_dir = _profile_models(cfg, spec, manifests) if conditional else (None, None)
    model_dir = Path(reasoner) if reasoner else (planned or latest_model(cfg.storage_root, spec.recipe))
    if model_dir is None:
        raise FileNotFoundError(
            "no fine-tuned reasoning model yet: run `tinyemo run finetune-reasoning` first, "
            "or pass --param reasoner=PATH"
        )
    name = dataset or reason_stage.reasoning_dataset(cfg)
    if name not in manifests:
        raise ValueError(f"dataset {name!r} is not in profile {cfg.profile}: {', '.join(manifests)}")
    manifest = Path(manifests[name]["manifest"])
    plan = reason_stage.plan_split(cfg, name, run_dir, model_dir, spec.reason, normal_dir, manifest)
    desc = up_to_date(plan, ReasoningStore(cfg.storage_root).read, reason_task, scope=cfg.storage_root,
                      tags=functools.partial(gpu_tags, "auto", cfg.flows.gpu.tag), cfg=cfg, dataset=name,
                      run_dir=run_dir,
                      model_dir=model_dir, spec=spec.reason, plan=plan, manifest=manifest,
                      normal_dir=normal_dir)
    if desc.get("computed") and (text := reasoning_markdown(Path(desc["path"]))):
        create_markdown_artifact(text, key="reason", description=f"Conditional reasoning: {desc['path']}")
    return desc


@flow(name="full-pipeline")
def full_pipeline(
    config: str = "flows.yaml", profile: str = "demo", overrides: list[str] | None = None
) -> dict:
    """Everything for a profile: build-dataset (projector trained and evaluated), synthetic instruction
    data, both reasoning fine-tuning stages and conditional reasoning, then evaluate-generated when
    ``evaluate_generated.model`` names the profile's own trained model; every step cached.

    The other flows' bodies run inside this one flow run (``.fn``: no subflow runs), so a warm rerun costs
    one flow run and a plan per stage, no task run (issue 18: within 1.5x of an empty flow)."""
    from pipelines.flows.build_dataset import build_dataset

    report = build_dataset.fn(config, profile, overrides)
    trained = finetune_reasoning.fn(config, profile, overrides)
    if not recipe_info(trained.get("recipe", "tinyemo")).conditional_reasoning:  # TinyEmo's (§III-C); the
        # other recipes are judged by evaluate-generated (docs/judging.md)
        get_run_logger().info("recipe %s: no conditional reasoning step", trained.get("recipe"))
        return {**report, "finetune": trained, "reason": None}
    reasoned = reason.fn(config, profile, overrides)
    judged = None
    cfg = config_from(config, profile, overrides)
    if cfg.spec.evaluate_generated is not None and cfg.spec.evaluate_generated.model in TRAINED_MODELS:
        from pipelines.flows.evaluate_generated import evaluate_generated

        judged = evaluate_generated.fn(config, profile, overrides)  # the trained model, answers unlabelled
    return {**report, "finetune": trained, "reason": reasoned, "evaluate_generated": judged}
