"""LLaVA-1.5 fine-tuned on LLaVA-format instruction records (TinyEmo Table VI's LoRA variants, §IV-D).

The llava-emotic recipe's model side (the processor saved with the model carries the LLaVA-1.5 "v1" template
the trainer tokenises, and pads images to a square with the mean colour) trained on the generic
``instructions/<dataset>/`` exports: e.g. the Affective Explanations pairs ("What does this image make you
feel?" -> a human explanation) or TinyEmo's own instruction data. LoRA through ``train.lora`` (PEFT).
"""

from __future__ import annotations

import dataclasses

from tinyemo_core.finetune.recipes import llava_emotic

RECIPE = dataclasses.replace(
    llava_emotic.RECIPE,
    name="llava",
    description="LLaVA-1.5 on instruction exports: connector + LLM (full or LoRA), vision frozen",
)
