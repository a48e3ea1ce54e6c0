"""Benchmark: Metric Projector training throughput vs a bare PyTorch loop, FLOP utilisation, peak memory.

``train_projector`` reads float16 features from a memory-mapped .npy (as from the feature store) and adds
per-batch conversion, synonym draws, the OneCycle schedule, checkpoints and metrics. The bare loop trains the
same model with the same loss and optimiser on a float32 tensor already in memory. Goal: ratio >= 0.8.
Utilisation = achieved matmul FLOP/s (6 x (in*H + H*out) per sample for forward + backward) over the FLOP/s
of a large float32 matmul on the same device. Peak RSS growth during training is compared with the bytes of
features read. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tinyemo_core.projector import MetricProjector, TrainData, TrainingSpec, build_loss, train_projector


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_flops(device: str, size: int = 1024, reps: int = 20) -> float:
    """FLOP/s of a large float32 matmul: the attainable peak the utilisation is measured against."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * size**3 * reps / (time.perf_counter() - t0)


def bare_loop(x: torch.Tensor, y: torch.Tensor, table: torch.Tensor, spec: TrainingSpec,
              out_dim: int) -> float:
    """Samples/s of a minimal loop: same model, loss, AdamW + OneCycle, in-memory float32 tensors."""
    torch.manual_seed(spec.seed)
    model = MetricProjector(x.shape[1], out_dim, spec.hidden_dim, spec.dropout).to(spec.device)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    steps = -(-len(x) // spec.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec.max_lr, total_steps=spec.epochs * steps,
                                                pct_start=spec.pct_start)
    loss_fn = build_loss(spec.loss, temperature=spec.temperature, margin=spec.margin)
    x, y = x.to(spec.device), y.to(spec.device)
    t0 = time.perf_counter()
    for _ in range(spec.epochs):
        perm = torch.randperm(len(x), device=x.device)
        for start in range(0, len(x), spec.batch_size):
            idx = perm[start:start + spec.batch_size]
            if len(idx) < 2:
                continue
            loss = loss_fn(model(x[idx]), y[idx], table)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    if spec.device.startswith("cuda"):
        torch.cuda.synchronize()
    return spec.epochs * len(x) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096, help="training samples")
    ap.add_argument("--in-dim", type=int, default=768, help="vision feature width (CLIP ViT-L/14: 768)")
    ap.add_argument("--out-dim", type=int, default=1280, help="label width (OpenELM-270M: 1280, the '3M')")
    ap.add_argument("--labels", type=int, default=25)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--loss", choices=["ntxent", "cosine"], default="ntxent")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = TrainingSpec(loss=args.loss, epochs=args.epochs, batch_size=args.batch_size, device=args.device,
                        synonym_prob=0.0)
    rng = np.random.default_rng(0)
    y = rng.integers(0, args.labels, args.n)
    labels = rng.normal(size=(args.labels, args.out_dim)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features.npy"
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(args.n, args.in_dim))
        for s in range(0, args.n, 4096):  # written in chunks, like the feature store's shards
            mm[s:s + 4096] = rng.normal(size=(min(4096, args.n - s), args.in_dim)).astype(np.float16)
        mm.flush()
        del mm
        features = np.load(path, mmap_mode="r")
        feature_mb = features.nbytes / 2**20
        # warm-up run: allocator, thread pools and kernels initialised before the peak RSS baseline
        train_projector(TrainData(features[:256], y[:256]), None, labels, spec, Path(tmp) / "warm",
                        progress=False)
        rss_before = peak_rss_mb()
        t0 = time.perf_counter()
        data = TrainData(features, y)
        result = train_projector(data, None, labels, spec, Path(tmp) / "run", progress=False)
        wall = time.perf_counter() - t0
        rss_after = peak_rss_mb()
        ours = float(np.mean([h["samples_per_s"] for h in result.history]))
        table = torch.from_numpy(labels / np.linalg.norm(labels, axis=1, keepdims=True)).to(args.device)
        x = torch.from_numpy(np.asarray(features, dtype=np.float32))
        bare = bare_loop(x, torch.from_numpy(y), table, spec, args.out_dim)
    hidden = args.out_dim
    flops_per_sample = 6 * (args.in_dim * hidden + hidden * args.out_dim)
    peak = matmul_flops(args.device)
    report = {
        "bench": "projector_train", "device": args.device, "threads": torch.get_num_threads(),
        "n": args.n, "in_dim": args.in_dim, "out_dim": args.out_dim, "batch_size": args.batch_size,
        "epochs": args.epochs, "loss": args.loss, "params": result.param_count,
        "samples_per_s": round(ours, 1), "bare_samples_per_s": round(bare, 1), "ratio": round(ours / bare, 3),
        "wall_s_incl_checkpoints": round(wall, 2),
        "achieved_gflops": round(ours * flops_per_sample / 1e9, 2),
        "matmul_peak_gflops": round(peak / 1e9, 2),
        "utilisation": round(ours * flops_per_sample / peak, 3),
        "features_mb": round(feature_mb, 1), "peak_rss_before_mb": round(rss_before, 1),
        "peak_rss_growth_mb": round(rss_after - rss_before, 1),
    }
    print(f"projector training {ours:.0f} samples/s vs bare loop {bare:.0f} (ratio {ours / bare:.2f}); "
          f"utilisation {report['utilisation']:.1%} of {report['matmul_peak_gflops']} GFLOP/s; peak RSS grew "
          f"{report['peak_rss_growth_mb']} MB for {report['features_mb']} MB of features", file=sys.stderr)
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
