"""Reasoning fine-tuning stages (TinyEmo §III-C): stage 1 "pretrain" (connector), stage 2 "finetune".

``plan_stage`` gives fingerprint/folder/completion; ``run_stage`` trains one stage (resuming a killed run,
returning a finished one at once); ``run_finetune`` runs the profile's stages in order, stage 2 starting from
stage 1's saved model. Each returns a small JSON-able descriptor. No Prefect here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tinyemo_core.finetune.identity import model_identity
from tinyemo_core.finetune.patches import PatchLookup, patch_sources_complete, sources_identity
from tinyemo_core.finetune.recipes import Recipe, get_recipe, recipe_info
from tinyemo_core.finetune.spec import ReasoningSpec, Stage
from tinyemo_core.identity import file_sha256
from tinyemo_core.store import finetune as store
from tinyemo_core.store.features import FeatureStore
from tinyemo_core.store.plan import StorePlan

PatchSources = Sequence[tuple[FeatureStore, Path, Path]]  # (patch store, manifest, dataset root)


def export_path(export_dir: Path, name: str) -> Path:
    return Path(export_dir) / f"{name}.json"


def _use_patches(spec: ReasoningSpec, sources: PatchSources | None) -> bool:
    if spec.cached_patches == "off" or not sources:
        if spec.cached_patches == "on":
            raise ValueError(
                "reasoning.cached_patches: on, but no patch store was given; extract patches "
                "first (features stage, output=patches) or set it to auto/off"
            )
        return False
    complete = patch_sources_complete([s for s, _, _ in sources])
    if spec.cached_patches == "on" and not complete:
        raise ValueError("reasoning.cached_patches: on, but a patch store is incomplete")
    return complete


def stage_inputs(
    spec: ReasoningSpec,
    export_dir: Path,
    stage: Stage,
    *,
    parent: str | None,
    patch_sources: PatchSources | None = None,
) -> dict[str, Any]:
    """Everything that determines the stage's weights (hashed into its fingerprint)."""
    path = export_path(export_dir, spec.stage(stage).export)
    if not path.is_file():
        raise FileNotFoundError(
            f"reasoning {stage}: export {path} is missing; run generate-qa first (it "
            f"writes {spec.stage(stage).export}.json) or fix reasoning.{stage}.export"
        )
    sources = patch_sources if _use_patches(spec, patch_sources) else None
    return {
        "export": file_sha256(path),
        "model": model_identity(spec.model),
        "parent": parent,
        "stage": spec.stage(stage).model_dump(mode="json"),
        "patches": sources_identity(sources) if sources else None,
    }


def _parent(
    spec: ReasoningSpec,
    stage: Stage,
    storage_root: Path,
    export_dir: Path,
    patch_sources: PatchSources | None,
) -> StorePlan | None:
    """The plan of the stage ``stage`` starts from (the recipe's previous stage if the profile trains it)."""
    before = recipe_info(spec.recipe).parent_stage(stage, spec.stages)
    if before is None:
        return None
    return plan_stage(storage_root, spec, export_dir, before, patch_sources=patch_sources)  # type: ignore[arg-type]


def plan_stage(
    storage_root: Path,
    spec: ReasoningSpec,
    export_dir: Path,
    stage: Stage,
    *,
    patch_sources: PatchSources | None = None,
    parent: StorePlan | None = None,
) -> StorePlan:
    """Fingerprint + folder + completion of ``stage`` (stage 2's includes stage 1's fingerprint;
    ``parent``: stage 1's plan when the caller made it already)."""
    if parent is None:
        parent = _parent(spec, stage, storage_root, export_dir, patch_sources)
    inputs = stage_inputs(
        spec, export_dir, stage, parent=parent.fingerprint if parent else None, patch_sources=patch_sources
    )
    return store.plan(storage_root, spec.recipe, stage, inputs)


def run_stage(
    storage_root: Path,
    spec: ReasoningSpec,
    export_dir: Path,
    image_root: Path,
    stage: Stage,
    *,
    patch_sources: PatchSources | None = None,
    on_progress: Callable[[dict], None] | None = None,
    plan: StorePlan | None = None,
    parent: StorePlan | None = None,
) -> dict[str, Any]:
    """Train one stage (idempotent, resumable); return its descriptor (path, fingerprint, result).
    ``plan``/``parent``: the plans the caller made (:func:`plan_stage`); they are not made again."""
    from tinyemo_core.finetune.data import load_export, order_records
    from tinyemo_core.finetune.trainer import train_model

    if parent is None:  # stage 2 starts from stage 1 (planned here unless the caller passed its plan)
        parent = _parent(spec, stage, storage_root, export_dir, patch_sources)
    p = plan or plan_stage(storage_root, spec, export_dir, stage, patch_sources=patch_sources, parent=parent)
    if store.complete(p.path):
        return store.describe(p, stage, computed=False)
    recipe, sspec = get_recipe(spec.recipe), spec.stage(stage)
    if parent is not None and not store.complete(parent.path):
        raise RuntimeError(
            f"reasoning finetune starts from pretrain, which is not trained yet ({parent.path})"
        )
    model, processor = _load(recipe, spec, parent.path if parent else None)
    records = order_records(
        load_export(export_path(export_dir, sspec.export)),
        shuffle=sspec.shuffle_records,
        seed=sspec.train.seed,
        limit=sspec.max_records,
    )
    patches = None
    if _use_patches(spec, patch_sources):
        if recipe.read_cached_patches is None:
            raise ValueError(f"reasoning.cached_patches: the {spec.recipe} recipe reads images, not cached "
                             "patch tokens; set reasoning.cached_patches: off")
        width = model.config.vision_config.hidden_size
        patches = PatchLookup.from_stores(patch_sources, image_root, width, {r["image"] for r in records})
        recipe.read_cached_patches(model)
    ds = recipe.dataset(records, processor, Path(image_root), stage, max_length=spec.model.max_length,
                        patches=patches, kinds=sspec.record_kinds)
    train_model(
        model,
        ds,
        recipe.collator(processor),
        sspec.train,
        p.path,
        trainable=recipe.trainable(stage),
        processor=processor,
        on_progress=on_progress,
        save=recipe.save,
    )
    return store.describe(p, stage, computed=True)


def _load(recipe: Recipe, spec: ReasoningSpec, parent: Path | None) -> tuple[Any, Any]:
    """The starting model: built by the recipe, or the parent stage's saved model loaded by the recipe."""
    return recipe.build(spec.model) if parent is None else recipe.load(store.model_dir(parent))


def normal_spec(spec: ReasoningSpec) -> ReasoningSpec | None:
    """The settings of TinyEmo Fig. 9's "normal" model (``reasoning.normal``): the same model and stage 1,
    stage 2 trained on the records without the conditional line. None when the profile asks for none."""
    if spec.normal is None or "finetune" not in spec.stages:
        return None
    return spec.model_copy(update={"finetune": spec.normal, "normal": None})


def run_finetune(
    storage_root: Path,
    spec: ReasoningSpec,
    export_dir: Path,
    image_root: Path,
    *,
    stages: Sequence[Stage] | None = None,
    patch_sources: PatchSources | None = None,
    on_progress: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Run the selected stages in order (default: the profile's); returns per-stage descriptors."""
    chosen = list(stages or spec.stages)
    bad = [s for s in chosen if s not in spec.stages]
    if bad:
        raise ValueError(f"stages {bad} are not in reasoning.stages {spec.stages}")
    out = {}
    for stage in [s for s in spec.stages if s in chosen]:

        def tagged(rec: dict, stage: str = stage) -> None:
            if on_progress is not None:
                on_progress({"stage": stage, **rec})

        out[stage] = run_stage(
            storage_root, spec, export_dir, image_root, stage, patch_sources=patch_sources, on_progress=tagged
        )
    last = out[chosen[-1]] if chosen else None
    normal = normal_spec(spec) if "finetune" in chosen else None
    normal_desc = None
    if normal is not None:  # Fig. 9: the "normal" model, from the same stage-1 model

        def tagged_normal(rec: dict) -> None:
            if on_progress is not None:
                on_progress({"stage": "normal", **rec})

        normal_desc = run_stage(storage_root, normal, export_dir, image_root, "finetune",
                                patch_sources=patch_sources, on_progress=tagged_normal)
    return {"recipe": spec.recipe, "stages": out, "model": last["model"] if last else None,
            "normal": normal_desc, "normal_model": normal_desc["model"] if normal_desc else None}
