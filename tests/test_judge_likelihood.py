"""Teacher-forced category scores on a real tiny LLaVA: batched pass == one sequence per category."""

import numpy as np
import pytest
import torch
from PIL import Image

from tinyemo_core.generate.backends.transformers_local import TransformersGenerator
from tinyemo_core.generate.tiny_model import build_tiny_vlm
from tinyemo_core.judge.likelihood import category_log_likelihoods, prompt_inputs


def test_category_scores_equal_single_sequence_log_likelihood(tmp_path):
    gen = TransformersGenerator(build_tiny_vlm(tmp_path / "m"), device="cpu", dtype="float32")
    img = Image.fromarray((np.random.RandomState(0).rand(32, 32, 3) * 255).astype("uint8"))
    cats = ["happiness", "doubt/confusion", "peace"]
    scores = category_log_likelihoods(
        gen.model, gen.processor, "Which emotions?", img, cats, answer_prefix="Emotions: "
    )
    assert scores.shape == (3,) and np.all(scores < 0)
    base = prompt_inputs(gen.processor, "Which emotions?", img)
    head = gen.tokenizer(" Emotions:", add_special_tokens=False).input_ids
    for c, s in zip(cats, scores, strict=True):
        answer = gen.tokenizer(" Emotions: " + c, add_special_tokens=False).input_ids  # as training tokenises
        assert answer[: len(head)] == head
        ids = answer[len(head):]
        full = torch.cat([base["input_ids"], torch.tensor([head + ids])], dim=1)
        with torch.inference_mode():
            logits = gen.model(
                input_ids=full, attention_mask=torch.ones_like(full), pixel_values=base["pixel_values"]
            ).logits
        logp = torch.log_softmax(logits.float(), -1)[0]
        n = base["input_ids"].shape[1] + len(head)
        manual = sum(float(logp[n + k - 1, t]) for k, t in enumerate(ids))
        assert s == pytest.approx(manual, abs=1e-4)
