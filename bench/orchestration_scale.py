"""Orchestration at scale (issue 21), the parts ``bench/orchestration.py --only shards|walk`` runs:

- ``shards``: ``extract-features`` on a scaled demo with one image per shard, at ``--small`` (500) and
  ``--large`` (20,000) shards, each run in a fresh process (its embedded Prefect server is a subprocess, so
  the process's peak RSS is the flow's): ms per shard and peak RSS, and their ratio (goal <= 1.3). The demo
  data and manifests are prepared beforehand in another process, so only extraction is measured.
- ``walk``: a 100,000-file dataset tree (hard links of a few small valid JPEGs, imagefolder layout) added
  to the demo's four datasets, one cold ``tinyemo run full-pipeline``, then warm no-op reruns run as the CLI
  runs them but in a process that times every dataset-tree walk (the manifests' stat walk and the
  preflight's image count): how many walks, their time, and the rest of the command; plus one walk of the
  big tree alone.

Usage: ``python bench/orchestration_scale.py [--parts shards walk] [--small 500] [--large 20000]
[--files 100000]``; the last line printed is JSON. Runs take minutes (the large extraction is 20,000 images).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(home), PREFECT_LOCAL_STORAGE_PATH=str(home / "results"), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               # one intra-op thread: on a small shared machine torch's spinning threads make a one-image
               # forward of the tiny encoder ~30x slower (measured 390 vs 11 ms per one-image shard)
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="600")  # busy machines start it slowly
    return env


def _child(args: list[str], env: dict[str, str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-5000:]}")
    tracebacks = proc.stderr.count("Traceback (most recent call last)")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "tracebacks_in_output": tracebacks}


# ---- children (run in their own process) ----------------------------------------------------------------


def child_prepare(config: str) -> dict:
    """Demo data and manifests (no Prefect), so the measured run only extracts."""
    from tinyemo_core.config import load_config
    from tinyemo_core.stages import ingest

    cfg = load_config(config, "demo")
    ingest.make_demo_data(cfg.storage_root, cfg.spec.demo_data)
    rows = 0
    for name, spec in cfg.datasets.items():
        plan = ingest.plan(name, spec, cfg.storage_root)
        desc = ingest.ingest(name, spec, cfg.storage_root, plan.fingerprint, workers=2, progress=False)
        rows += desc["rows"]
    return {"images": rows}


def child_extract(config: str) -> dict:
    """One ``extract-features`` flow run as the CLI starts it (embedded server); peak RSS of this process."""
    import pipelines  # noqa: F401  (project Prefect settings first)
    from pipelines.flows.extract_features import extract_features
    from pipelines.runtime.runners import task_runner_from
    from tinyemo_core.config import load_config

    cfg = load_config(config, "demo")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    out = extract_features.with_options(task_runner=task_runner_from(cfg.flows.task_runner))(
        config=config, profile="demo")
    seconds = time.perf_counter() - start
    from tinyemo_core.stages import features

    fp = features.encoder_fingerprint(cfg.encoder)
    shards = sum(len(features.open_store(cfg.storage_root, cfg.encoder_name, n, fp).manifest()["shards"])
                 for n in out["stores"])
    return {"shards": shards, "seconds": round(seconds, 2), "ms_per_shard": round(1000 * seconds / shards, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_before_flow_mb": round(rss_before / 1024, 1)}


def child_walk(root: str) -> dict:
    from tinyemo_core.store.manifests import listing_hash

    times = []
    for _ in range(3):
        start = time.perf_counter()
        listing_hash(Path(root))
        times.append(time.perf_counter() - start)
    return {"walk_s": [round(t, 3) for t in times], "walk_median_s": round(statistics.median(times), 3)}


def child_warm(config: str) -> dict:
    """``tinyemo run full-pipeline`` in this process (as the CLI runs it), timing every dataset-tree walk:
    the manifests' stat walk (fingerprints) and the preflight's image count."""
    from tinyemo_core.preflight import resources
    from tinyemo_core.store import manifests

    spent = {"stat_walks": 0, "stat_walk_s": 0.0, "count_walks": 0, "count_walk_s": 0.0}

    def timed(fn, kind):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[f"{kind}_walks"] += 1
                spent[f"{kind}_walk_s"] += time.perf_counter() - start
        return wrapper

    manifests._walk = timed(manifests._walk, "stat")
    resources.count_images = timed(resources.count_images, "count")
    from pipelines.cli import app

    start = time.perf_counter()
    app(["run", "full-pipeline", "--config", config, "--profile", "demo"], standalone_mode=False)
    total = time.perf_counter() - start
    walk = spent["stat_walk_s"] + spent["count_walk_s"]
    return {"command_s": round(total, 2), **{k: round(v, 3) for k, v in spent.items()},
            "walk_s": round(walk, 3), "rest_s": round(total - walk, 2)}


# ---- parts ---------------------------------------------------------------------------------------------


def _demo_classes() -> int:
    from tinyemo_core.data.demo import DEMO_DATASETS

    return sum(len(classes) for _, _, _, classes, _ in DEMO_DATASETS.values())


def shards_memory(small: int, large: int, max_tasks: int | None) -> dict:
    """Peak RSS and ms per shard of extract-features at ``small`` and ``large`` shards (one image each)."""
    from tinyemo_core.config import write_scaled_demo

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, n in (("small", small), ("large", large)):
            base = Path(tmp) / label
            base.mkdir()
            per_class = max(2, math.ceil(n / _demo_classes()))
            config = write_scaled_demo(ROOT / "flows.yaml", base, images_per_class=per_class, shard_size=1)
            if max_tasks is not None:
                import yaml

                data = yaml.safe_load(config.read_text())
                data["profiles"]["demo"]["extraction"]["max_tasks"] = max_tasks
                config.write_text(yaml.safe_dump(data, sort_keys=False))
            env = _env(base / "prefect")
            prep = _child(["prepare", str(config)], env)
            res = _child(["extract", str(config)], env)
            out[label] = {**res, "images": prep["images"]}
    out["peak_rss_ratio"] = round(out["large"]["peak_rss_mb"] / out["small"]["peak_rss_mb"], 3)
    out["peak_rss_ratio_goal"] = 1.3
    return out


def _tree(root: Path, files: int) -> None:
    """``files`` hard links of 16 small valid JPEGs under root/<split>/<class>/ (imagefolder layout)."""
    import numpy as np
    from PIL import Image

    seeds = []
    for i in range(16):
        rng = np.random.default_rng(i)
        path = root.parent / f"seed-{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path, quality=80)
        seeds.append(path)
    classes = ("anger", "joy", "sadness", "fear")
    for i in range(files):
        split = "test" if i % 5 == 0 else "train"
        folder = root / split / classes[i % 4] / f"{i // 1000:03d}"
        if i % 1000 == 0 or not folder.exists():
            folder.mkdir(parents=True, exist_ok=True)
        os.link(seeds[i % 16], folder / f"{i}.jpg")


def warm_walk(files: int, repeats: int) -> dict:
    """A warm no-op ``full-pipeline`` with a ``files``-file dataset tree among the demo datasets: the
    command's time split into dataset-tree walks (how many, how long) and the rest; plus one walk of the big
    tree alone."""
    import yaml

    sys.path.insert(0, str(ROOT / "bench"))
    from orchestration import _timed, _tinyemo  # the CLI runner of the warm-rerun part

    from tinyemo_core.config import write_scaled_demo

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = base / "big"
        start = time.perf_counter()
        _tree(root, files)
        make_s = time.perf_counter() - start
        config = write_scaled_demo(ROOT / "flows.yaml", base, epochs=2)
        data = yaml.safe_load(config.read_text())
        data["datasets"]["big"] = {"layout": "imagefolder", "root": str(root), "taxonomy": "open"}
        demo = data["profiles"]["demo"]
        demo["held_in"] = [*demo["held_in"], "big"]
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        env = _env(base / "prefect")
        run = [*_tinyemo(), "run", "full-pipeline", "--config", str(config), "--profile", "demo"]
        cold = _timed(run, env)
        warm = [_child(["warm", str(config)], env) for _ in range(repeats)]
        walk = _child(["walk", str(root)], env)
    best = min(warm, key=lambda w: w["command_s"])
    return {"files": files, "datasets": 5, "tree_build_s": round(make_s, 1),
            "full_pipeline_cold_s": round(cold, 1),
            "warm": warm, "warm_command_s": best["command_s"], "warm_stat_walks": best["stat_walks"],
            "warm_walk_s": best["walk_s"], "warm_rest_s": best["rest_s"],
            "one_walk_of_big_tree_s": walk["walk_median_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=2, metavar=("WHAT", "ARG"), help=argparse.SUPPRESS)
    parser.add_argument("--parts", nargs="+", choices=["shards", "walk"], default=["shards", "walk"])
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--large", type=int, default=20_000)
    parser.add_argument("--max-tasks", type=int, default=None, help="extraction.max_tasks (default: config)")
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.child:
        what, arg = args.child
        children = {"prepare": child_prepare, "extract": child_extract, "walk": child_walk,
                    "warm": child_warm}
        print(json.dumps(children[what](arg)))
        return
    result: dict = {}
    if "shards" in args.parts:
        result["shards"] = shards_memory(args.small, args.large, args.max_tasks)
    if "walk" in args.parts:
        result["warm_walk"] = warm_walk(args.files, args.repeats)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
