"""The TinyEmo reasoning model (§III-C): frozen CLIP ViT, ``mlp2x_gelu`` connector, LLM; two stages.

Stage 1 "pretrain" trains the connector only; stage 2 "finetune" the connector and the whole LLM (the paper's
full fine-tune; ``TrainArgs.lora`` turns the LLM part into LoRA). The vision tower is frozen in both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tinyemo_core.finetune.data import LlavaCollator, LlavaDataset
from tinyemo_core.finetune.model import build_reasoning_model, use_cached_patches
from tinyemo_core.finetune.recipes import Recipe
from tinyemo_core.finetune.spec import ModelSpec

CONNECTOR = "multi_modal_projector"
LLM = ("language_model", "lm_head")


def is_connector(name: str) -> bool:
    return CONNECTOR in name.split(".")


def is_llm(name: str) -> bool:
    parts = name.split(".")
    return any(p in parts for p in LLM)


def trainable(stage: str) -> Callable[[str], bool]:
    """pretrain: connector only; finetune: connector + LLM. The vision tower never trains."""
    if stage == "pretrain":
        return is_connector
    if stage == "finetune":
        return lambda name: is_connector(name) or is_llm(name)
    raise ValueError(f"unknown stage {stage!r}; the tinyemo recipe has 'pretrain' and 'finetune'")


def dataset(
    records: Sequence[dict],
    processor: Any,
    image_root: Path,
    stage: str,
    *,
    max_length: int = 2048,
    patches: Any = None,
    kinds: Sequence[str] | None = None,
) -> LlavaDataset:
    if kinds is not None:  # flows.yaml validation refuses it first (RecipeInfo.record_kinds is empty)
        raise ValueError("the LLaVA-layout recipes have no record kinds to select (remove record_kinds)")
    return LlavaDataset(records, processor, image_root, max_length=max_length, patches=patches)


def build(spec: ModelSpec) -> tuple[Any, Any]:
    return build_reasoning_model(spec)


RECIPE = Recipe(
    name="tinyemo",
    model_class="LlavaForConditionalGeneration",
    build=build,
    trainable=trainable,
    dataset=dataset,
    collator=LlavaCollator,
    read_cached_patches=use_cached_patches,
)
