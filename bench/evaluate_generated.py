"""Benchmark the generated-answer evaluation (tiny random VLM + tiny CLIP, CPU, offline).

1. answers/s through ``evaluate_generated`` (runner, cache, parsing, report) vs the bare backend answering the
   same requests (``generate_batch_sync`` in batches of the same size); goal ratio >= 0.9.
2. CLIPScore image side: reading stored features vs recomputing image features (speed-up).
Prints one JSON object last.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinyemo_core.config import DatasetSpec  # noqa: E402
from tinyemo_core.encoders.specs import VisionEncoderSpec  # noqa: E402
from tinyemo_core.generate.backends.transformers_local import TransformersGenerator  # noqa: E402
from tinyemo_core.generate.chains import render  # noqa: E402
from tinyemo_core.generate.tiny_model import build_tiny_vlm  # noqa: E402
from tinyemo_core.judge.clipscore import ClipScorer  # noqa: E402
from tinyemo_core.judge.plan import chains_for, instruction_id, load_items  # noqa: E402
from tinyemo_core.judge.prompts import default_instruction  # noqa: E402
from tinyemo_core.judge.spec import EvaluateGeneratedSpec  # noqa: E402
from tinyemo_core.stages import features as F  # noqa: E402
from tinyemo_core.stages.evaluate_generated import evaluate_generated  # noqa: E402

LABELS = ["amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness"]
N, BATCH, MAX_TOKENS, REPEATS = 96, 16, 16, 3


def make_data(root: Path) -> tuple[dict, dict]:
    rows = []
    for i in range(N):
        rel = f"{LABELS[i % 8]}/{i:04d}.png"
        (root / "ds" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((np.random.RandomState(i).rand(64, 64, 3) * 255).astype("uint8")).save(
            root / "ds" / rel
        )
        rows.append(
            {
                "image_id": f"im{i:04d}",
                "path": rel,
                "split": "test",
                "label": LABELS[i % 8],
                "dataset": "bench",
                "status": "ok",
            }
        )
    manifest = root / "manifests" / "bench" / "bench0001.parquet"
    manifest.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), manifest)
    return {"bench": DatasetSpec(layout="imagefolder", root=root / "ds")}, {"bench": str(manifest)}


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-eg-"))
    model = build_tiny_vlm(root / "vlm")
    datasets, manifests = make_data(root)
    spec = EvaluateGeneratedSpec(
        recipe="emovit",
        model=str(model),
        max_tokens=MAX_TOKENS,
        batch_size=BATCH,
        max_concurrency=BATCH,
        device="cpu",
    )
    gen = TransformersGenerator(model, device="cpu", max_batch_size=BATCH)
    # the same requests the stage sends
    items, labels = load_items("bench", Path(manifests["bench"]), datasets["bench"].root, "test")
    tmpl = default_instruction("emovit")
    chains = chains_for(items, tmpl, labels, f"eval-emovit-{instruction_id(tmpl)}")
    reqs = [render(c, 0, [], spec.generation_spec()) for c in chains]
    gen.generate_batch_sync(reqs[:BATCH])  # warm-up (both paths then run warm)
    # interleaved repeats, best of each (the machine is shared): bare backend vs the stage on fresh stores
    bare, stage, runner = [], [], []
    for rep in range(REPEATS):
        t = time.perf_counter()
        for s in range(0, len(reqs), BATCH):
            gen.generate_batch_sync(reqs[s : s + BATCH])
        bare.append(time.perf_counter() - t)
        t = time.perf_counter()
        out = evaluate_generated(
            spec, datasets, {"bench": "held_in"}, manifests, root / f"storage{rep}", generator=gen
        )
        stage.append(time.perf_counter() - t)
        assert out["generation"][0]["sent"] == N
        runner.append(out["generation"][0]["wall_s"])
    bare_s, stage_s, runner_s = min(bare), min(stage), min(runner)
    t = time.perf_counter()
    evaluate_generated(spec, datasets, {"bench": "held_in"}, manifests, root / "storage0", generator=gen)
    warm_cache_s = time.perf_counter() - t  # every answer cached under a new report root: no model call

    enc = VisionEncoderSpec(
        model="tinyemo-tiny-clip", config_file="builtin:tinyemo-tiny-clip.json", device="cpu"
    )
    store = F.open_store(root / "storage", "tiny", "bench", F.encoder_fingerprint(enc))
    shards = [
        F.extract_shard(enc, store, p)
        for p in F.plan_shards(Path(manifests["bench"]), datasets["bench"].root, store, 1024)
    ]
    F.commit_store(store, shards, build_faiss=False)
    scorer = ClipScorer(enc)
    ids = [it.sample_id for it in items]
    scorer.encode_images([items[0].image_path])  # warm-up
    t = time.perf_counter()
    _, stored = store.load(ids)
    stored_s = time.perf_counter() - t
    t = time.perf_counter()
    recomputed = scorer.encode_images([it.image_path for it in items])
    recompute_s = time.perf_counter() - t
    cos = np.sum(stored.astype(np.float32) * recomputed, 1) / (
        np.linalg.norm(stored.astype(np.float32), axis=1) * np.linalg.norm(recomputed, axis=1)
    )
    print(
        json.dumps(
            {
                "answers": N,
                "batch_size": BATCH,
                "max_tokens": MAX_TOKENS,
                "bare_backend_answers_per_s": round(N / bare_s, 2),
                "stage_answers_per_s": round(N / stage_s, 2),
                "stage_over_bare": round(bare_s / stage_s, 3),
                "goal_stage_over_bare": 0.9,
                # the asking phase alone (runner + cache + batching), no data loading or report writing
                "runner_answers_per_s": round(N / runner_s, 2),
                "runner_over_bare": round(bare_s / runner_s, 3),
                "fixed_overhead_s": round(stage_s - runner_s, 3),
                "stage_all_cached_s": round(warm_cache_s, 3),
                "clip_images": N,
                "stored_features_s": round(stored_s, 4),
                "recompute_image_features_s": round(recompute_s, 4),
                "clip_image_side_speedup": round(recompute_s / max(stored_s, 1e-9), 1),
                "stored_vs_recomputed_min_cosine": round(float(cos.min()), 5),
            }
        )
    )


if __name__ == "__main__":
    main()
