"""Tiny LLaVA-format exports with real image files (tests, demo, benchmarks): offline, seeded, instant."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from tinyemo_core.generate import prompts as P
from tinyemo_core.generate.export import IMAGE_PREFIX, write_json

LABELS = ("joy", "sadness", "fear", "anger")


def tiny_images(root: Path, n: int, *, size: int = 32, seed: int = 0) -> list[str]:
    """Write ``n`` seeded PNGs (a colour per class + noise) under ``root/img``; return relative paths."""
    rng = np.random.default_rng(seed)
    (Path(root) / "img").mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        base = np.array([60 * (i % 4), 200 - 50 * (i % 4), 40 + 30 * (i % 3)], dtype=np.float32)
        arr = np.clip(base + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
        rel = f"img/{i:04d}.png"
        Image.fromarray(arr).save(Path(root) / rel)
        out.append(rel)
    return out


def tiny_exports(
    root: Path, n: int = 8, *, labels: Sequence[str] = LABELS, conditional: bool = True, seed: int = 0
) -> dict[str, Path]:
    """``pretrain_train.json`` (caption + sentiment Q/A) and ``emoreason_train.json`` over ``n`` images."""
    root = Path(root)
    images = tiny_images(root, n, seed=seed)
    pre, reason = [], []
    for i, rel in enumerate(images):
        label = labels[i % len(labels)]
        cap = f"a small picture in tone {i % 4} with a {label} mood"
        pre.append(_rec(f"{i:04d}-caption", rel, P.strip_image_tag(P.CAPTION_PROMPT), cap))
        pre.append(_rec(f"{i:04d}-sentiment", rel, "How does this picture feel?", f"It feels like {label}."))
        instr = P.strip_image_tag(P.emoreason_instruction(labels, label if conditional else None))
        answer = P.emoreason_answer(f"The colours suggest {label}.", label)
        reason.append(_rec(f"{i:04d}-emoreason", rel, instr, answer))
    out = {"pretrain_train": root / "pretrain_train.json", "emoreason_train": root / "emoreason_train.json"}
    write_json(pre, out["pretrain_train"])
    write_json(reason, out["emoreason_train"])
    return out


def _rec(rid: str, image: str, human: str, gpt: str) -> dict:
    return {
        "id": rid,
        "image": image,
        "conversations": [{"from": "human", "value": IMAGE_PREFIX + human}, {"from": "gpt", "value": gpt}],
    }
