"""Batched generation with a saved reasoning model (transformers ``generate``), same prompt as training."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tinyemo_core.finetune.data import encode_prompt
from tinyemo_core.finetune.model import image_token_count


@torch.inference_mode()
def generate(
    model,
    processor,
    images: Sequence[Any],
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 128,
    batch_size: int = 8,
) -> list[str]:
    """Greedy answers for (PIL image, user text) pairs, left-padded batches."""
    if len(images) != len(prompts):
        raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
    tok, n_image = processor.tokenizer, image_token_count(processor)
    pad = tok.pad_token_id
    device = next(model.parameters()).device
    dtype = model.model.multi_modal_projector.linear_1.weight.dtype
    out: list[str] = []
    for start in range(0, len(images), batch_size):
        ids = [encode_prompt(tok, "<image>\n" + p, n_image) for p in prompts[start : start + batch_size]]
        width = max(map(len, ids))
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=device)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=device)
        pixels = processor.image_processor(
            images=list(images[start : start + batch_size]), return_tensors="pt"
        )["pixel_values"].to(device, dtype)
        gen = model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            pixel_values=pixels,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
        )
        out += [t.strip() for t in tok.batch_decode(gen[:, width:], skip_special_tokens=True)]
    return out
