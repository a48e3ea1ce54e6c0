"""Cached patch tokens (what the features stage stores for a transformers CLIP encoder) and the live ViT give
the same logits, fp32 CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tinyemo_core.encoders.specs import VisionEncoderSpec
from tinyemo_core.finetune.data import LlavaCollator, LlavaDataset, load_export
from tinyemo_core.finetune.model import build_tiny, use_cached_patches
from tinyemo_core.finetune.spec import TinyModelSpec
from tinyemo_core.finetune.tiny import tiny_exports


def test_cached_patches_equal_live_vit_logits(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    model, proc = build_tiny(TinyModelSpec())
    model.eval()
    tower_dir = tmp_path / "tower"
    model.model.vision_tower.save_pretrained(tower_dir)  # the encoder registry entry: kind=hf, this folder
    proc.image_processor.save_pretrained(tower_dir)
    from tinyemo_core.encoders.vision_hf import HFVisionEncoder

    enc = HFVisionEncoder(VisionEncoderSpec(kind="hf", model=str(tower_dir), store_dtype="float32",
                                            patch_tokens=True), "fp", "cpu")
    data = tmp_path / "data"
    recs = load_export(tiny_exports(data, 3)["emoreason_train"])
    live = LlavaDataset(recs, proc, data)
    pixels = torch.stack([live[i]["pixel_values"] for i in range(3)])
    patches = enc.encode_batch(pixels, patches=True).patches  # (3, tokens, width): hidden_states[-2], no CLS
    assert patches.shape == (3, 16, 32)
    by_image = {r["image"]: np.asarray(patches[i], np.float32) for i, r in enumerate(recs)}
    cached = LlavaDataset(recs, proc, data, patches=by_image)
    collate = LlavaCollator(proc)
    with torch.no_grad():
        a = model(**collate([live[i] for i in range(3)])).logits
        use_cached_patches(model)
        b = model(**collate([cached[i] for i in range(3)])).logits
        use_cached_patches(model, on=False)
        c = model(**collate([live[i] for i in range(3)])).logits
    assert torch.allclose(a, b, atol=1e-5, rtol=0) and torch.equal(a, c)
    assert float((a - b).abs().max()) < 1e-5
