"""Fine-tuning recipes: each owns its model class, how it is built, loaded and saved, what trains in each
stage and how records become batches (the way TinyLLaVA Factory's training recipes register themselves).

Every recipe goes through the one trainer (:func:`tinyemo_core.finetune.trainer.train_model`); the stages
(:mod:`tinyemo_core.stages.finetune`) name no model class and branch on no recipe name: they ask the recipe.

Two halves:

- :data:`RECIPE_INFO`: what is known without importing model code (its stages, the record kinds it can
  select, which exports it trains on). flows.yaml is validated against it when it loads.
- :class:`Recipe`: the model side, defined as ``RECIPE = Recipe(...)`` in
  ``tinyemo_core/finetune/recipes/<module>.py`` and imported on first use by :data:`RECIPES`, so importing
  this package imports no torch.

Adding a recipe: docs/architecture.md, "How to add a recipe".
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

#: EmoVIT's data types (record ids end in ``-<kind>``), selectable per stage (the §4.3.1 ablation)
EMOVIT_KINDS: tuple[str, ...] = ("categorical", "conversation", "reasoning")


@dataclass(frozen=True)
class RecipeInfo:
    """The facts of a recipe that flows.yaml validation and the flows need (no model code imported)."""

    module: str  # under tinyemo_core.finetune.recipes
    stages: tuple[str, ...]  # the stages it defines, in training order (a stage starts from the previous)
    record_kinds: tuple[str, ...] = ()  # record kinds a stage may select (``reasoning.<stage>.record_kinds``)
    exports: Literal["instructions", "emotic"] = "instructions"  # generate-qa exports or the EMOTIC exports
    # TinyEmo's conditional reasoning (§III-C): stage 2 trains on the EmoReason records, the reason flow runs
    # the planned stage-2 model (and Fig. 9's normal one) with the projector's label in the prompt
    conditional_reasoning: bool = False
    description: str = ""

    def parent_stage(self, stage: str, chosen: Sequence[str]) -> str | None:
        """The stage ``stage`` starts from: the one before it in :attr:`stages` if the profile trains it."""
        order = list(self.stages)
        if stage not in order:
            raise ValueError(f"the recipe has no stage {stage!r}; its stages: {order}")
        before = order[: order.index(stage)]
        return before[-1] if before and before[-1] in chosen else None


RECIPE_INFO: dict[str, RecipeInfo] = {
    "tinyemo": RecipeInfo(
        "tinyemo", ("pretrain", "finetune"), conditional_reasoning=True,
        description="TinyEmo reasoning VLM: CLIP ViT (frozen) + mlp2x_gelu + LLM, LLaVA layout",
    ),
    "llava-emotic": RecipeInfo(
        "llava_emotic", ("pretrain", "finetune"), exports="emotic",
        description="LLaVA-1.5 on EMOTIC: connector + LLM (full or LoRA), vision frozen",
    ),
    "llava": RecipeInfo(
        "llava", ("pretrain", "finetune"),
        description="LLaVA-1.5 on instruction exports (TinyEmo Table VI's LoRA variants), vision frozen",
    ),
    "emovit": RecipeInfo(
        "emovit", ("finetune",), record_kinds=EMOVIT_KINDS,
        description="EmoVIT: InstructBLIP, Q-Former + queries + language projection trained; ViT, LLM frozen",
    ),
}  # fmt: skip


def recipe_info(name: str) -> RecipeInfo:
    """The light facts of ``name``; an unknown name is an error listing the valid ones."""
    if name not in RECIPE_INFO:
        valid = ", ".join(sorted(RECIPE_INFO))
        raise KeyError(f"unknown fine-tuning recipe {name!r}; valid recipes: {valid}")
    return RECIPE_INFO[name]


def save_pretrained(model: Any, processor: Any | None, dest: Path) -> None:
    """The default save: transformers' ``save_pretrained`` of the model and its processor into ``dest``
    (loads in plain transformers, TRL and vLLM without our code)."""
    model.save_pretrained(dest)
    if processor is not None:
        processor.save_pretrained(dest)


@dataclass(frozen=True)
class Recipe:
    """One fine-tuning recipe, the model side.

    - ``model_class`` / ``processor_class``: the transformers classes a saved ``model/`` folder loads with
      (:meth:`load`: stage 2 starting from stage 1, a trained model judged or reasoned with in process);
    - ``build(spec) -> (model, processor)``: tiny random configs offline, real weights by hub id/local path;
    - ``trainable(stage) -> (param name -> bool)``: everything it rejects is frozen;
    - ``dataset(records, processor, image_root, stage, *, max_length, patches, kinds)``: a torch map-style
      dataset of dicts (``kinds``: the record kinds to keep, None = all);
    - ``collator(processor)``: list of items -> ``input_ids``, ``attention_mask``, ``labels`` (-100 on prompt,
      image and padding tokens), ``pixel_values`` (+ model-specific inputs);
    - ``save(model, processor, dest)``: writes the final model (default: ``save_pretrained``);
    - ``read_cached_patches(model)``: makes the model read cached patch tokens instead of running its vision
      tower; None when the recipe cannot (then ``reasoning.cached_patches: on`` is refused).
    """

    name: str
    model_class: str
    build: Callable[[Any], tuple[Any, Any]]
    trainable: Callable[[str], Callable[[str], bool]]
    dataset: Callable[..., Any]
    collator: Callable[[Any], Callable[[list[dict]], dict]]
    processor_class: str = "AutoProcessor"
    save: Callable[[Any, Any, Path], None] = save_pretrained
    read_cached_patches: Callable[[Any], Any] | None = None
    description: str = ""  # what the model side adds to RecipeInfo.description (shown in listings)

    @property
    def info(self) -> RecipeInfo:
        return recipe_info(self.name)

    @property
    def stages(self) -> tuple[str, ...]:
        return self.info.stages

    def load(self, folder: Path, **kwargs: Any) -> tuple[Any, Any]:
        """``(model, processor)`` of a folder this recipe saved."""
        import transformers

        model_cls = getattr(transformers, self.model_class)
        processor_cls = getattr(transformers, self.processor_class)
        return model_cls.from_pretrained(folder, **kwargs), processor_cls.from_pretrained(folder)


class _Registry(Mapping[str, Recipe]):
    """Name -> :class:`Recipe`, imported lazily (an unknown name raises a KeyError listing the valid ones)."""

    def __init__(self) -> None:
        self._loaded: dict[str, Recipe] = {}

    def __getitem__(self, name: str) -> Recipe:
        if name not in self._loaded:
            module = importlib.import_module(f"{__name__}.{recipe_info(name).module}")
            recipe = module.RECIPE
            if recipe.name != name:
                raise KeyError(f"recipe module {module.__name__} defines {recipe.name!r}, expected {name!r}")
            self._loaded[name] = recipe
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(RECIPE_INFO)

    def __len__(self) -> int:
        return len(RECIPE_INFO)


RECIPES: Mapping[str, Recipe] = _Registry()


def get_recipe(name: str) -> Recipe:
    """The recipe registered as ``name`` (KeyError listing the known names otherwise)."""
    return RECIPES[name]
