"""Teacher-forced category scores: log P(category name | image, prompt, answer prefix) from a HF VLM.

One forward pass per sample: the prompt (with its image) is tokenised once by the processor (the chat
template the model was trained with), the answer prefix and each category name's tokens are appended to it,
and the C sequences go through the model as one batch (right padding).
A category's score is the sum of its tokens' log-probabilities (``mean=True``: per-token mean, which does
not favour short names). These graded scores make EMOTIC average precision meaningful where a generated list
only gives 0/1 scores (docs/judging.md, "mAP").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def prompt_inputs(processor: Any, prompt: str, image: Any) -> dict:
    """Processor inputs of the chat prompt (image first in the user turn), as generation builds them."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return dict(processor(images=[image], text=text, return_tensors="pt", add_special_tokens=False))


def answer_tokens(
    tok: Any, categories: Sequence[str], answer_prefix: str = ""
) -> tuple[list[int], list[list[int]]]:
    """(prefix ids, per-category ids) of the answer slot, tokenised as training tokenises an answer: one
    string after the prompt, ``" " + answer`` (:func:`tinyemo_core.finetune.data.encode_conversation`). A
    category's ids are what ``" " + prefix + category`` adds to ``" " + prefix.rstrip()``; for the EMOTIC
    targets (``Emotions: engagement, ...``) the prefix is ``"Emotions: "`` and each category is scored as the
    first of the list."""
    head_text = (" " + answer_prefix.rstrip()) if answer_prefix.strip() else ""
    head = tok(head_text, add_special_tokens=False).input_ids if head_text else []
    cats = []
    for c in categories:
        full = tok(" " + answer_prefix.lstrip() + c, add_special_tokens=False).input_ids
        if full[: len(head)] != head or len(full) == len(head):
            raise ValueError(f"category {c!r}: its tokens after the answer prefix {answer_prefix!r} cannot "
                             "be separated (the tokenizer merges them across the boundary)")
        cats.append(full[len(head):])
    return head, cats


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
    base = prompt_inputs(processor, prompt, image)
    head, cats = answer_tokens(tok, categories, answer_prefix)
    ids = base.pop("input_ids")[0].tolist() + head
    base.pop("attention_mask", None)
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
