"""LLaVA-1.5 fine-tuned on EMOTIC (model side): the LLaVA layout, vision tower frozen.

Starts from a complete LLaVA checkpoint (``ModelSpec.source``, e.g. ``llava-hf/llava-1.5-7b-hf``) or a tiny
random one. Stage "finetune" trains the connector and the LLM (LLaVA-1.5's visual instruction tuning); with
``TrainArgs.lora`` the LLM gets LoRA adapters and the connector trains fully (LLaVA's ``finetune_lora``).
Stage "pretrain" (connector only) is there for a fresh connector. Data: the EMOTIC LLaVA-format export.

One format everywhere (docs/recipes.md): the processor saved with the model carries
:data:`tinyemo_core.finetune.model.CHAT_TEMPLATE`, the LLaVA-1.5 "v1" conversation the trainer tokenises
(system text included; llava-hf's released template omits it), so generation and likelihood scoring see the
training prompt; and its image processor pads to a square with the mean colour before the resize (LLaVA-1.5's
``image_aspect_ratio: pad``) instead of centre-cropping, so a red box near an image edge is never cut off.
"""

from __future__ import annotations

from typing import Any

from tinyemo_core.finetune.data import LlavaCollator
from tinyemo_core.finetune.model import CHAT_TEMPLATE, use_cached_patches
from tinyemo_core.finetune.recipes import Recipe
from tinyemo_core.finetune.recipes.tinyemo import build as build_llava
from tinyemo_core.finetune.recipes.tinyemo import dataset, trainable


def pad_to_square(image_processor: Any) -> Any:
    """The same resize/normalisation as ``image_processor`` with LLaVA's square padding (mean colour) first:
    transformers' ``LlavaImageProcessor(do_pad=True)``; after padding the centre crop removes nothing."""
    from transformers import LlavaImageProcessor

    if isinstance(image_processor, LlavaImageProcessor) and image_processor.do_pad:
        return image_processor
    settings = {k: v for k, v in image_processor.to_dict().items()
                if k not in ("image_processor_type", "processor_class", "do_pad")}
    return LlavaImageProcessor(**settings, do_pad=True)


def llava_format(processor: Any) -> Any:
    """The training prompt format and square padding on ``processor`` (saved with the model)."""
    processor.chat_template = CHAT_TEMPLATE
    processor.image_processor = pad_to_square(processor.image_processor)
    return processor


def build(spec: Any) -> tuple[Any, Any]:
    model, processor = build_llava(spec)
    return model, llava_format(processor)


RECIPE = Recipe(
    name="llava-emotic",
    model_class="LlavaForConditionalGeneration",
    build=build,
    trainable=trainable,
    dataset=dataset,
    collator=LlavaCollator,
    read_cached_patches=use_cached_patches,
    description="LLaVA-1.5 on EMOTIC: connector + LLM (full or LoRA), vision frozen; padded square images",
)
