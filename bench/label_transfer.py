"""Benchmark: generalized zero-shot on the word-derived demo (profile demo-label-transfer, issue 22).

Runs the label-transfer flow through Prefect (a temporary API, stores in a temporary folder) twice: the
profile as it is (contrastive training) and with the training-side option ``training.word_mixup``; prints
each run's per-fold table (S / U / H uncalibrated, calibrated, permuted-word control, ZSL, chance, n). It also
measures how much of the word-derived image signal the tiny random ViT keeps: R^2 of a ridge probe from the
stored features of train images to the classes' pattern coefficients, on test images, next to the same probe
on the raw pixels (the signal's upper reference) and on features with the classes' coefficients shuffled
(chance). The last line printed is JSON with ratios: calibrated H / uncalibrated H (null when uncalibrated
H is 0), calibrated H / control H, mixup's calibrated H / the baseline's.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PROFILE = "demo-label-transfer"


def ridge_r2(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
             lam: float = 1e-2) -> float:
    """R^2 on the test rows of a ridge regression (standardised inputs, intercept)."""
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-8
    a = np.c_[(x_train - mu) / sd, np.ones(len(x_train))]
    b = np.c_[(x_test - mu) / sd, np.ones(len(x_test))]
    w = np.linalg.solve(a.T @ a + lam * len(a) * np.eye(a.shape[1]), a.T @ y_train)
    resid = y_test - b @ w
    return float(1 - (resid ** 2).sum() / ((y_test - y_test.mean(0)) ** 2).sum())


def probe(config: Path) -> dict:
    """R^2 of features -> class pattern coefficients (and of pixels, and of shuffled coefficients)."""
    from PIL import Image

    from tinyemo_core.config import load_config
    from tinyemo_core.data.demo_words import word_coefficients
    from tinyemo_core.stages.assemble import load_split
    from tinyemo_core.stages.features import encoder_fingerprint, open_store
    from tinyemo_core.stages.ingest import plan as ingest_plan
    from tinyemo_core.stages.label_lookup import label_vectors
    from tinyemo_core.store.manifests import read_manifest

    cfg = load_config(config, PROFILE)
    demo = cfg.spec.label_transfer.demo_words
    name = demo.dataset
    manifest = ingest_plan(name, cfg.datasets[name], cfg.storage_root).path
    store = open_store(cfg.storage_root, cfg.encoder_name, name, encoder_fingerprint(cfg.encoder), "pooled")
    vectors = label_vectors(cfg.backbone, cfg.backbone_name, cfg.storage_root, demo.words).stack(demo.words)
    coefs = dict(zip(demo.words, word_coefficients(vectors, demo.dims, demo.seed), strict=True))
    table = read_manifest(manifest, ok_only=True)
    paths = dict(zip(table["image_id"].to_pylist(), table["path"].to_pylist(), strict=True))
    out = {}
    parts = {s: load_split(name, manifest, store, s) for s in ("train", "test")}
    y = {s: np.stack([coefs[w] for w in p.labels]) for s, p in parts.items()}
    x = {s: np.asarray(p.features, np.float32) for s, p in parts.items()}
    root = Path(cfg.datasets[name].root)

    def pixels(ids: list[str]) -> np.ndarray:
        return np.stack([np.asarray(Image.open(root / paths[i]).convert("RGB").resize((16, 16)),
                                    np.float32).ravel() for i in ids])

    px = {s: pixels(p.image_ids) for s, p in parts.items()}
    shuffled = dict(zip(demo.words, np.random.default_rng(0).permutation(list(coefs.values())), strict=True))
    y_shuffled = {s: np.stack([shuffled[w] for w in p.labels]) for s, p in parts.items()}
    out["features_r2"] = ridge_r2(x["train"], y["train"], x["test"], y["test"])
    out["pixels_r2"] = ridge_r2(px["train"], y["train"], px["test"], y["test"])
    out["shuffled_r2"] = ridge_r2(x["train"], y_shuffled["train"], x["test"], y["test"])
    out["feature_dim"], out["coefficients"] = int(x["train"].shape[1]), int(y["train"].shape[1])
    return out


def run(config: Path, overrides: list[str]) -> dict:
    from pipelines.flows.label_transfer import label_transfer

    t0 = time.perf_counter()
    result = label_transfer(config=str(config), profile=PROFILE, overrides=overrides)
    return {"seconds": round(time.perf_counter() - t0, 2), "summary": result["summary"],
            "rows": result["rows"], "markdown": Path(result["markdown"]).read_text()}


def _ratio(a: float, b: float) -> float | None:
    return None if b == 0 else round(a / b, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mixup-weight", type=float, default=1.0)
    parser.add_argument("--mixup-alpha", type=float, default=1.0)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    from tinyemo_core.config import write_scaled_demo

    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=120):
        config = write_scaled_demo(ROOT / "flows.yaml", Path(tmp))
        base = run(config, [])
        setting = f"{{weight: {args.mixup_weight}, alpha: {args.mixup_alpha}}}"
        mixup = run(config, [f"training.word_mixup={setting}"])
        probed = probe(config)
    for label, res in (("contrastive (profile as is)", base), ("+ word mixup", mixup)):
        print(f"## {label}\n\n{res['markdown']}")
    b, m = base["summary"]["demo_words"], mixup["summary"]["demo_words"]
    metrics = ("uncalibrated", "calibrated", "control")
    out = {
        "profile": PROFILE,
        "probe": {k: round(v, 3) if isinstance(v, float) else v for k, v in probed.items()},
        "base": {"cold_seconds": base["seconds"], **b},
        "word_mixup": {"weight": args.mixup_weight, "alpha": args.mixup_alpha, "seconds": mixup["seconds"],
                       **m},
        "ratios": {"base_h_cal_over_uncal": _ratio(b["calibrated"]["h"], b["uncalibrated"]["h"]),
                   "base_h_cal_over_control": _ratio(b["calibrated"]["h"], b["control"]["h"]),
                   "mixup_h_cal_over_control": _ratio(m["calibrated"]["h"], m["control"]["h"]),
                   "mixup_over_base_h_cal": _ratio(m["calibrated"]["h"], b["calibrated"]["h"]),
                   "mixup_over_base_h_uncal": _ratio(m["uncalibrated"]["h"], b["uncalibrated"]["h"])},
        "per_fold": {k: [{"fold": r["fold"], "unseen": r["unseen"], "n_seen": r["n_seen"],
                          "n_unseen": r["n_unseen"], "margin": r["margin"],
                          **{f"{p}_{m_}": round(r[p][m_], 4) for p in metrics
                             for m_ in ("seen_acc", "unseen_acc", "h")}, "zsl": round(r["zsl"], 4)}
                         for r in res["rows"]] for k, res in (("base", base), ("word_mixup", mixup))},
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
