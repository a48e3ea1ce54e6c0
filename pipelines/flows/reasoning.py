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
from pipelines.runtime.caching import recorded
from pipelines.runtime.gpu import gpu_tags
from pipelines.runtime.progress import ThrottledProgress
from tinyemo_core.config import RunConfig
from tinyemo_core.monitor import DeviceMonitor
from tinyemo_core.stages import finetune as finetune_stage
from tinyemo_core.stages import reason as reason_stage


def _spec(cfg: RunConfig):
    if cfg.spec.reasoning is None:
        raise ValueError(
            f"profiles.{cfg.profile}.reasoning is not set in {cfg.config_path}; add a reasoning: "
            "block (docs/reasoning.md)"
        )
    return cfg.spec.reasoning


def _exports(config: str, profile: str, overrides: list[str], cfg: RunConfig) -> tuple[Path, Path]:
    """(export folder, image root) of the profile's recipe, brought up to date."""
    if _spec(cfg).recipe == "llava-emotic":
        from pipelines.flows.emotic import emotic_exports

        export = next(iter(emotic_exports(config, profile, overrides)["datasets"].values()))["export"]
        return Path(export["dir"]), Path(export["image_root"])
    from pipelines.flows.generate_qa import generate_qa_profile

    if cfg.spec.generation is not None:  # without a generation block: exports already under instructions/
        generate_qa_profile(config, profile, overrides)
    name = reason_stage.reasoning_dataset(cfg)
    return cfg.storage_root / "instructions" / name, Path(cfg.datasets[name].root)


def _patch_sources(cfg: RunConfig, spec) -> list | None:
    """(patch store, manifest, dataset root) of the exports' dataset for ``reasoning.patch_encoder``; the
    stage uses it when complete (``cached_patches: auto``), else runs the live ViT."""
    if spec.patch_encoder is None:
        return None
    from tinyemo_core.stages import features

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
    manifest = ensure_manifests(cfg)[name]["manifest"]
    return [(store, Path(manifest), Path(cfg.datasets[name].root))]


@task(name="finetune-stage")
@recorded
def finetune_stage_task(
    storage_root: Path, spec, export_dir: Path, image_root: Path, stage: str, patch_sources=None
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
            stage,
            patch_sources=patch_sources,
            on_progress=on_progress,
        )
    return {**desc, **monitor.summary()}


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
    export_dir, image_root = _exports(config, profile, overrides or [], cfg)
    sources = _patch_sources(cfg, spec)
    tags = gpu_tags("auto", cfg.flows.gpu.tag)
    out, rows = {}, []
    for stage in [s for s in spec.stages if s in chosen]:
        plan = finetune_stage.plan_stage(cfg.storage_root, spec, export_dir, stage, patch_sources=sources)
        if plan.complete:
            get_run_logger().info("finetune %s: %s is complete; nothing trained", stage, plan.path)
        desc = finetune_stage_task.with_options(tags=tags)(
            cfg.storage_root, spec, export_dir, image_root, stage, sources
        )
        out[stage] = desc
        rows.append(
            {"stage": stage, **{k: v for k, v in desc.items() if isinstance(v, int | float | str | bool)}}
        )
    normal = finetune_stage.normal_spec(spec) if "finetune" in chosen else None
    normal_desc = None
    if normal is not None:  # TinyEmo Fig. 9: the "normal" model, stage 2 from the same stage-1 model
        normal_desc = finetune_stage_task.with_options(tags=tags)(
            cfg.storage_root, normal, export_dir, image_root, "finetune", sources
        )
        rows.append({"stage": "finetune (normal, Fig. 9)",
                     **{k: v for k, v in normal_desc.items() if isinstance(v, int | float | str | bool)}})
    create_table_artifact(rows, key="finetune-reasoning", description=f"Fine-tuning ({spec.recipe})")
    return {"recipe": spec.recipe, "stages": out, "model": out[chosen[-1]]["model"] if chosen else None,
            "normal_model": normal_desc["model"] if normal_desc else None}


def _profile_models(cfg: RunConfig, spec) -> tuple[Path | None, Path | None]:
    """(stage-2 model, Fig. 9 normal model) of the profile when trained, by plan (not "latest": the normal
    model is a stage-2 model too); (None, None) when the exports are not there to plan from."""
    from tinyemo_core.store import finetune as finetune_store

    export_dir = cfg.storage_root / "instructions" / reason_stage.reasoning_dataset(cfg)
    sources = _patch_sources(cfg, spec)
    try:
        main = finetune_stage.plan_stage(cfg.storage_root, spec, export_dir, spec.stages[-1],
                                         patch_sources=sources)
        normal_spec = finetune_stage.normal_spec(spec)
        normal = (finetune_stage.plan_stage(cfg.storage_root, normal_spec, export_dir, "finetune",
                                            patch_sources=sources)
                  if normal_spec is not None else None)
    except FileNotFoundError:
        return None, None
    return (finetune_store.model_dir(main.path) if main.complete else None,
            finetune_store.model_dir(normal.path) if normal is not None and normal.complete else None)


@task(name="reason")
@recorded
def reason_task(cfg: RunConfig, dataset: str, run_dir: Path, model_dir: Path | None, spec,
                normal_dir: Path | None = None) -> dict:
    progress = ThrottledProgress("reason-progress", f"Conditional reasoning on {dataset}")

    def on_progress(p: dict) -> None:
        if p.get("total"):
            progress(p.get("done", 0), p["total"])

    with DeviceMonitor() as monitor:
        desc = reason_stage.reason_split(cfg, dataset, run_dir, model_dir, spec, on_progress, normal_dir)
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
    from tinyemo_core.store.finetune import latest_model

    extra = [] if condition is None else [f"reasoning.reason.condition={str(condition).lower()}"]
    cfg = config_from(config, profile, [*(overrides or []), *extra])
    spec = _spec(cfg)
    manifests = ensure_manifests(cfg)
    stores = ensure_features(cfg, manifests)
    labels = ensure_labels(cfg, manifests)
    run_dir = Path(ensure_training(cfg, manifests, stores, labels)["run_dir"])
    planned, normal_dir = _profile_models(cfg, spec) if spec.recipe == "tinyemo" else (None, None)
    model_dir = Path(reasoner) if reasoner else (planned or latest_model(cfg.storage_root, spec.recipe))
    if model_dir is None:
        raise FileNotFoundError(
            "no fine-tuned reasoning model yet: run `tinyemo run finetune-reasoning` first, "
            "or pass --param reasoner=PATH"
        )
    name = dataset or reason_stage.reasoning_dataset(cfg)
    tags = gpu_tags("auto", cfg.flows.gpu.tag)
    desc = reason_task.with_options(tags=tags)(cfg, name, run_dir, model_dir, spec.reason, normal_dir)
    folder = Path(desc["path"])
    text = "\n\n".join(
        (folder / f).read_text() for f in ("samples.md", "comparison.md") if (folder / f).exists()
    )
    if text:
        create_markdown_artifact(text, key="reason", description=f"Conditional reasoning: {folder}")
    return desc


@flow(name="full-pipeline")
def full_pipeline(
    config: str = "flows.yaml", profile: str = "demo", overrides: list[str] | None = None
) -> dict:
    """Everything for a profile: build-dataset (projector trained and evaluated), synthetic instruction
    data, both reasoning fine-tuning stages and conditional reasoning; every step cached."""
    from pipelines.flows.build_dataset import build_dataset

    report = build_dataset(config, profile, overrides)
    trained = finetune_reasoning(config, profile, overrides)
    reasoned = reason(config, profile, overrides)
    return {**report, "finetune": trained, "reason": reasoned}
