"""LLaVA-1.5 fine-tuned on EMOTIC (model side): the LLaVA layout, vision tower frozen.

Starts from a complete LLaVA checkpoint (``ModelSpec.source``, e.g. ``llava-hf/llava-1.5-7b-hf``) or a tiny
random one. Stage "finetune" trains the connector and the LLM (LLaVA-1.5's visual instruction tuning); with
``TrainArgs.lora`` the LLM gets LoRA adapters and the connector trains fully (LLaVA's ``finetune_lora``).
Stage "pretrain" (connector only) is there for a fresh connector. Data: the EMOTIC LLaVA-format export.
"""

from __future__ import annotations

from tinyemo_core.finetune.data import LlavaCollator
from tinyemo_core.finetune.recipes import Recipe
from tinyemo_core.finetune.recipes.tinyemo import build, dataset, trainable

RECIPE = Recipe(
    name="llava-emotic",
    build=build,
    trainable=trainable,
    dataset=dataset,
    collator=LlavaCollator,
    description="LLaVA-1.5 on EMOTIC: connector + LLM (full or LoRA), vision frozen",
)
