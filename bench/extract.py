"""Benchmark: encode_images (decode + forward) vs a bare forward loop, decode scaling, GPU-host projection.

For each encoder (the tiny demo config, and a ViT-B-32-sized random open_clip model at 224 px) it times, in
one run over the same JPEG files: decode+preprocess alone, the bare model loop over already-preprocessed
batches, and the full ``encode_images`` pipeline at several worker counts (and with ``decode: torchvision``).
ratio = pipeline img/s / bare img/s (goal >= 0.9 on CPU for a real-sized model).

Decode scaling: decode + 224-px preprocess img/s in 1 and 2 worker PROCESSES (one torch thread each), for
the PIL path and the torchvision path (``decode_jpeg`` + tensor preprocess on CPU); the 16-worker figure is
projected as ``16 x per-worker rate x measured 2-worker efficiency``. GPU host: ViT-L/14 at 224 px is
161.6 GFLOP per image; H100 bf16 dense peak ~989 TFLOP/s -> ~4,900 img/s at 80 % utilisation; the host
delivers min(forward, decode) img/s (clip-retrieval reports 312 img/s per A100 for ViT-L/14, decode-bound).
The last stdout line is a JSON object.

    python bench/extract.py [--images 64] [--batch-size 32] [--workers 0 1]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import torch  # noqa: E402

from tinyemo_core.config import load_flows  # noqa: E402
from tinyemo_core.encoders.extract import (  # noqa: E402
    TensorPreprocess,
    decode_batch,
    default_load_image,
    encode_images,
)
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
    tv_enc = load_vision_encoder(spec.model_copy(update={"decode": "torchvision"}))
    encode_images(tv_enc, paths[:batch_size], batch_size=batch_size, num_workers=0, progress=False)  # warm
    t0 = time.perf_counter()
    tv = encode_images(tv_enc, paths, batch_size=batch_size, num_workers=0, progress=False)
    pipe_s = time.perf_counter() - t0
    assert tv.vectors.shape == (n, enc.dim)
    out["pipeline_torchvision_img_s"] = round(n / pipe_s, 1)
    out["bound"] = "decode" if decode_s > bare_s else "model"
    return out


H100_BF16_DENSE_TFLOPS = 989.0
A100_BF16_DENSE_TFLOPS = 312.0
VIT_L14_GFLOP_224 = 161.6
UTILISATION = 0.8
CLIP_RETRIEVAL_A100_IMG_S = 312.0


def _decode_worker(args: tuple[str, list[str], int]) -> float:
    """Decode + preprocess ``paths`` ``repeats`` times in this process (one torch thread); seconds."""
    path_kind, paths, repeats = args
    import open_clip

    torch.set_num_threads(1)
    pre = open_clip.image_transform(224, is_train=False)
    tp = TensorPreprocess.from_transform(pre)
    datas = [Path(p).read_bytes() for p in paths]
    t0 = time.perf_counter()
    for _ in range(repeats):
        if path_kind == "pil":
            for p in paths:
                pre(default_load_image(Path(p)))
        else:
            for start in range(0, len(datas), 16):
                _, tensors, _ = decode_batch(datas[start:start + 16])
                tp(tensors)
    return time.perf_counter() - t0


def decode_scaling(paths: list[Path], repeats: int = 2) -> dict:
    """img/s of decode + 224-px preprocess with 1 and 2 worker processes, both paths; 16 projected."""
    out: dict = {}
    ctx = mp.get_context("spawn")
    for kind in ("pil", "torchvision"):
        rates = {}
        for workers in (1, 2):
            with ctx.Pool(workers) as pool:
                pool.map(_decode_worker, [(kind, [str(paths[0])], 1)] * workers)  # imports warm
                t0 = time.perf_counter()
                pool.map(_decode_worker, [(kind, [str(p) for p in paths], repeats)] * workers)
                wall = time.perf_counter() - t0
            rates[workers] = workers * len(paths) * repeats / wall
        per_worker = rates[1]
        efficiency = min(1.0, rates[2] / (2 * rates[1]))
        out[kind] = {"img_s_1_worker": round(rates[1], 1), "img_s_2_workers": round(rates[2], 1),
                     "efficiency_2": round(efficiency, 3),
                     "projected_img_s": {w: round(w * per_worker * efficiency, 0) for w in (4, 8, 16)}}
    return out


def gpu_projection(scaling: dict) -> dict:
    """Projected ViT-L/14 extraction rate of a 16-core GPU host (assumptions in the module docstring)."""
    forward_h100 = H100_BF16_DENSE_TFLOPS * 1e12 * UTILISATION / (VIT_L14_GFLOP_224 * 1e9)
    forward_a100 = A100_BF16_DENSE_TFLOPS * 1e12 * UTILISATION / (VIT_L14_GFLOP_224 * 1e9)
    cpu16 = {k: v["projected_img_s"][16] for k, v in scaling.items()}
    return {
        "assumptions": {"vit_l14_gflop_per_image": VIT_L14_GFLOP_224, "h100_bf16_dense_tflops":
                        H100_BF16_DENSE_TFLOPS, "a100_bf16_dense_tflops": A100_BF16_DENSE_TFLOPS,
                        "utilisation": UTILISATION, "decode_workers": 16, "image": "320x256 JPEG",
                        "reference_clip_retrieval_a100_img_s": CLIP_RETRIEVAL_A100_IMG_S},
        "forward_img_s": {"h100": round(forward_h100), "a100": round(forward_a100)},
        "cpu_decode_16_workers_img_s": cpu16,
        "host_img_s_pil": {g: round(min(f, cpu16["pil"])) for g, f in
                           (("h100", forward_h100), ("a100", forward_a100))},
        "host_img_s_torchvision_cpu": {g: round(min(f, cpu16["torchvision"])) for g, f in
                                       (("h100", forward_h100), ("a100", forward_a100))},
        "nvjpeg_on_gpu": "not measured here (no GPU); with decode on the GPU the CPU only reads files",
    }


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
        scaling = decode_scaling(paths)
    for r in results:
        print(r)
    print("decode + preprocess (224 px), img/s:", scaling)
    projection = gpu_projection(scaling)
    print("GPU host projection:", projection)
    print(json.dumps({"torch_threads": torch.get_num_threads(), "load_avg_1m": round(os.getloadavg()[0], 2),
                      "results": results, "decode_scaling": scaling, "gpu_host": projection}))


if __name__ == "__main__":
    main()
