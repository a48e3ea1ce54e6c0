"""Fine-tuning recipes as data: how to build the model, what trains in each stage, how records become batches.

Every recipe goes through the one trainer (:func:`tinyemo_core.finetune.trainer.train_model`). A recipe module
``tinyemo_core/finetune/recipes/<module>.py`` defines ``RECIPE = Recipe(...)``; :data:`RECIPES` loads it by
name on first use, so importing this package imports no model code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: recipe name -> module under tinyemo_core.finetune.recipes
RECIPE_MODULES: dict[str, str] = {
    "tinyemo": "tinyemo",
    "llava-emotic": "llava_emotic",
    "emovit": "emovit",
}


@dataclass(frozen=True)
class Recipe:
    """One fine-tuning recipe.

    - ``build(spec) -> (model, processor)``: tiny random configs offline, real weights by hub id/local path;
    - ``trainable(stage) -> (param name -> bool)``: everything it rejects is frozen;
    - ``dataset(records, processor, image_root, stage)``: a torch map-style dataset of dicts;
    - ``collator(processor)``: list of items -> ``input_ids``, ``attention_mask``, ``labels`` (-100 on prompt,
      image and padding tokens), ``pixel_values`` (+ model-specific inputs).
    """

    name: str
    build: Callable[[Any], tuple[Any, Any]]
    trainable: Callable[[str], Callable[[str], bool]]
    dataset: Callable[[Sequence[dict], Any, Path, str], Any]
    collator: Callable[[Any], Callable[[list[dict]], dict]]
    stages: tuple[str, ...] = ("pretrain", "finetune")
    description: str = ""


class _Registry(Mapping[str, Recipe]):
    """Name -> :class:`Recipe`, imported lazily (a recipe whose module is absent raises a clear KeyError)."""

    def __init__(self) -> None:
        self._loaded: dict[str, Recipe] = {}

    def __getitem__(self, name: str) -> Recipe:
        if name not in self._loaded:
            if name not in RECIPE_MODULES:
                raise KeyError(f"unknown fine-tuning recipe {name!r}; known: {sorted(RECIPE_MODULES)}")
            module = importlib.import_module(f"{__name__}.{RECIPE_MODULES[name]}")
            recipe = module.RECIPE
            if recipe.name != name:
                raise KeyError(f"recipe module {module.__name__} defines {recipe.name!r}, expected {name!r}")
            self._loaded[name] = recipe
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(RECIPE_MODULES)

    def __len__(self) -> int:
        return len(RECIPE_MODULES)


RECIPES: Mapping[str, Recipe] = _Registry()


def get_recipe(name: str) -> Recipe:
    """The recipe registered as ``name`` (KeyError listing the known names otherwise)."""
    return RECIPES[name]
