"""Teacher-forced category scores: log P(category name | image, prompt, answer prefix) from a HF VLM.

One forward pass per sample: the prompt (with its image) is tokenised once by the processor, each category
name's tokens are appended to it, and the C sequences go through the model as one batch (right padding).
A category's score is the sum of its tokens' log-probabilities (``mean=True``: per-token mean, which does
not favour short names). These graded scores make EMOTIC average precision meaningful where a generated list
only gives 0/1 scores (docs/judging.md, "mAP").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def prompt_inputs(processor: Any, prompt: str, image: Any, answer_prefix: str = "") -> dict:
    """Processor inputs of the chat prompt (image first in the user turn) followed by ``answer_prefix``."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) + answer_prefix
    return dict(processor(images=[image], text=text, return_tensors="pt", add_special_tokens=False))


def category_log_likelihoods(
    model: Any,
    processor: Any,
    prompt: str,
    image: Any,
    categories: Sequence[str],
    *,
    answer_prefix: str = "",
    mean: bool = False,
) -> np.ndarray:
    """(C,) scores of every category name in the answer slot after ``answer_prefix``."""
    import torch

    tok = processor.tokenizer
    base = prompt_inputs(processor, prompt, image, answer_prefix)
    ids = base.pop("input_ids")[0].tolist()
    base.pop("attention_mask", None)
    cats = [tok(c, add_special_tokens=False).input_ids for c in categories]
    if any(len(c) == 0 for c in cats):
        empty = [c for c, t in zip(categories, cats, strict=True) if not t]
        raise ValueError(f"categories tokenise to nothing: {empty}")
    width = len(ids) + max(len(c) for c in cats)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    input_ids = torch.full((len(cats), width), pad, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for r, c in enumerate(cats):
        input_ids[r, : len(ids) + len(c)] = torch.tensor(ids + c)
        mask[r, : len(ids) + len(c)] = 1
    device = next(model.parameters()).device
    extra = {}
    for k, v in base.items():
        if hasattr(v, "repeat"):
            v = v.repeat(len(cats), *([1] * (v.dim() - 1)))
            if v.is_floating_point():
                v = v.to(model.dtype)
        extra[k] = v.to(device) if hasattr(v, "to") else v
    with torch.inference_mode():
        logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device), **extra).logits
    logp = torch.log_softmax(logits.float(), dim=-1).cpu()
    out = np.zeros(len(cats), dtype=np.float64)
    for r, c in enumerate(cats):
        pos = torch.arange(len(ids), len(ids) + len(c))
        lp = logp[r, pos - 1, torch.tensor(c)]
        out[r] = float(lp.mean() if mean else lp.sum())
    return out
