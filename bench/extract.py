"""Benchmark: encode_images (DataLoader decode + forward) vs a bare forward loop on pre-decoded batches.

For each encoder (the tiny demo config, and a ViT-B-32-sized random open_clip model at 224 px) it times, in
one run over the same JPEG files: decode+preprocess alone, the bare model loop over already-preprocessed
batches, and the full ``encode_images`` pipeline at several worker counts. ratio = pipeline img/s / bare
img/s (goal >= 0.9 on CPU for a real-sized model). The last stdout line is a JSON object.

    python bench/extract.py [--images 64] [--batch-size 32] [--workers 0 1]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import torch  # noqa: E402

from tinyemo_core.config import load_flows  # noqa: E402
from tinyemo_core.encoders.extract import default_load_image, encode_images  # noqa: E402
from tinyemo_core.encoders.specs import VisionEncoderSpec  # noqa: E402
from tinyemo_core.encoders.vision import load_vision_encoder  # noqa: E402
from tinyemo_core.registry import encoder_spec  # noqa: E402


def vision_entry(name: str) -> VisionEncoderSpec:
    return encoder_spec(load_flows(Path(__file__).resolve().parents[1] / "flows.yaml"), name)


def make_images(folder: Path, n: int) -> list[Path]:
    """Smooth random 320x256 JPEGs (photo-like size and entropy; decode cost comparable to datasets')."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        small = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
        img = PIL.Image.fromarray(small).resize((320, 256), PIL.Image.BICUBIC)
        p = folder / f"img_{i:04d}.jpg"
        img.save(p, quality=90)
        paths.append(p)
    return paths


def bench_encoder(name: str, spec: VisionEncoderSpec, paths: list[Path], batch_size: int,
                  workers: list[int]) -> dict:
    enc = load_vision_encoder(spec)
    n = len(paths)
    t0 = time.perf_counter()
    tensors = [enc.preprocess(default_load_image(p)) for p in paths]
    decode_s = time.perf_counter() - t0
    batches = [torch.stack(tensors[i:i + batch_size]) for i in range(0, n, batch_size)]
    enc.encode(batches[0])  # warm-up
    t0 = time.perf_counter()
    for b in batches:
        enc.encode(b)
    bare_s = time.perf_counter() - t0
    out: dict = {"encoder": name, "image_size": enc.image_size, "dim": enc.dim, "images": n,
                 "decode_preprocess_img_s": round(n / decode_s, 1),
                 "bare_forward_img_s": round(n / bare_s, 1)}
    for w in workers:
        t0 = time.perf_counter()
        res = encode_images(enc, paths, batch_size=batch_size, num_workers=w, progress=False)
        pipe_s = time.perf_counter() - t0
        assert res.vectors.shape == (n, enc.dim) and not res.errors
        out[f"pipeline_w{w}_img_s"] = round(n / pipe_s, 1)
        out[f"ratio_w{w}"] = round(bare_s / pipe_s, 3)
    out["bound"] = "decode" if decode_s > bare_s else "model"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_images(Path(tmp), args.images)
        results = [
            bench_encoder("demo-tiny-clip", vision_entry("demo-tiny-clip"), paths, args.batch_size,
                          args.workers),
            bench_encoder("ViT-B-32 (random init)", VisionEncoderSpec(model="ViT-B-32"), paths,
                          args.batch_size, args.workers),
        ]
    for r in results:
        print(r)
    print(json.dumps({"torch_threads": torch.get_num_threads(), "results": results}))


if __name__ == "__main__":
    main()
