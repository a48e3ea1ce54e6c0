"""Orchestration overhead: Prefect per-task cost at 200+ shards, cold vs warm build-dataset on the demo, and
a warm ``tinyemo run full-pipeline`` against an empty Prefect flow started the same way (each a ``tinyemo``
subprocess starting its own embedded server; median of ``--repeats``; issue 18's goal: ratio <= 1.5).

Usage: ``python bench/orchestration.py [--shards 240] [--repeats 3]
[--only warm-rerun|scale-shards|scale-walk] [--scale]``; ``--scale`` adds issue 21's parts
(``bench/orchestration_scale.py``: peak RSS and ms per shard of extract-features at 500 vs 20,000 shards, a
warm full-pipeline on a 100,000-file tree against one walk). The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

import pipelines  # noqa: E402,F401  (project Prefect settings first)


def task_overhead(shards: int) -> dict:
    """Map a no-op task with the pipeline's cache settings (content key, persisted result) over ``shards``."""
    from prefect import flow, task, unmapped

    from pipelines.runtime.caching import CACHED

    @task(name="noop-shard", **CACHED)
    def noop(key: str, store: str) -> dict:
        return {"name": key, "rows": 0}

    @flow(name="bench-overhead")
    def fan_out(keys: list[str], salt: str) -> int:
        futures = noop.map(key=keys, store=unmapped(salt))
        return len([f.result() for f in futures])

    salt = str(time.time_ns())
    keys = [f"{salt}-{i}" for i in range(shards)]
    out = {}
    for label in ("cold", "warm"):  # warm: every task is a cache hit
        start = time.perf_counter()
        fan_out(keys, salt)
        out[f"{label}_ms_per_task"] = round(1000 * (time.perf_counter() - start) / shards, 2)
    return out


def build_times() -> dict:
    from pipelines.flows.build_dataset import build_dataset
    from tinyemo_core.config import write_scaled_demo

    with tempfile.TemporaryDirectory() as tmp:
        config = write_scaled_demo(ROOT / "flows.yaml", Path(tmp), epochs=5)
        out = {}
        for label in ("cold", "warm"):
            start = time.perf_counter()
            build_dataset(config=str(config), profile="demo")
            out[f"build_{label}_s"] = round(time.perf_counter() - start, 2)
    return out


# The empty flow, started exactly as `tinyemo run` starts a flow: the CLI's imports, the config loaded and
# validated, the profile's task runner, the flow called (Prefect starts its embedded server), the result
# printed. Only the flow body differs: it does nothing.
EMPTY_FLOW = """
import sys
from pathlib import Path

from pipelines.cli import app  # noqa: F401  (the same imports as `tinyemo run`)
from pipelines.cli.options import load
from pipelines.flows import flows
from pipelines.runtime.runners import task_runner_from
from prefect import flow


@flow(name="empty")
def empty(config: str, profile: str, overrides: list[str]) -> dict:
    return {}


flows()  # `tinyemo run` imports every flow module to find the one it was asked for
cfg = load(Path(sys.argv[1]), "demo")
print(empty.with_options(task_runner=task_runner_from(cfg.flows.task_runner))(
    config=str(cfg.config_path), profile="demo", overrides=[]))
"""


def _tinyemo() -> list[str]:
    exe = Path(sys.executable).with_name("tinyemo")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from pipelines.cli import app; app()"]


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed ({proc.returncode}):\n{proc.stdout[-2000:]}"
                           f"\n{proc.stderr[-4000:]}")
    return seconds


def warm_rerun_vs_empty(repeats: int = 3) -> dict:
    """Median wall time of a warm ``tinyemo run full-pipeline --profile demo`` (scaled demo, every store
    complete) and of an empty flow started the same way, each a fresh process with its own embedded
    Prefect server; alternated so both see the same machine load."""
    from tinyemo_core.config import write_scaled_demo

    with tempfile.TemporaryDirectory() as tmp:
        config = write_scaled_demo(ROOT / "flows.yaml", Path(tmp), epochs=5)
        home = Path(tmp) / "prefect"
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env.update(PREFECT_HOME=str(home), PREFECT_LOCAL_STORAGE_PATH=str(home / "results"))
        run = [*_tinyemo(), "run", "full-pipeline", "--config", str(config), "--profile", "demo"]
        empty = [sys.executable, "-c", EMPTY_FLOW, str(config)]
        cold = _timed(run, env)
        warm, base = [], []
        for _ in range(repeats):
            warm.append(_timed(run, env))
            base.append(_timed(empty, env))
    w, b = statistics.median(warm), statistics.median(base)
    return {"full_pipeline_cold_s": round(cold, 2), "full_pipeline_warm_s": [round(x, 2) for x in warm],
            "empty_flow_s": [round(x, 2) for x in base], "full_pipeline_warm_median_s": round(w, 2),
            "empty_flow_median_s": round(b, 2), "warm_over_empty": round(w / b, 2),
            "warm_over_empty_goal": 1.5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shards", type=int, default=240)
    parser.add_argument("--repeats", type=int, default=3, help="warm full-pipeline vs empty flow: runs each")
    parser.add_argument("--only", choices=["warm-rerun", "scale-shards", "scale-walk"],
                        help="run only this part")
    parser.add_argument("--scale", action="store_true",
                        help="also the issue-21 scale parts (bench/orchestration_scale.py): extract-features "
                        "peak RSS and ms/shard at 500 vs 20,000 shards, warm full-pipeline on a 100,000-file "
                        "tree vs one walk (takes a while: 20,000 images)")
    args = parser.parse_args()
    result: dict = {}
    if args.only in ("scale-shards", "scale-walk") or args.scale:
        import orchestration_scale as scale  # same folder (sys.path[0] when run as a script)

        if args.only in (None, "scale-shards"):
            result["scale_shards"] = scale.shards_memory(500, 20_000, None)
        if args.only in (None, "scale-walk"):
            result["scale_walk"] = scale.warm_walk(100_000, args.repeats)
        if args.only is not None:
            print(json.dumps(result))
            return
    if args.only is None:
        from prefect.testing.utilities import prefect_test_harness

        with prefect_test_harness(server_startup_timeout=120):
            result = {"shards": args.shards, **task_overhead(args.shards), **build_times(),
                      "note": "temporary local Prefect server (SQLite), thread pool; demo = small config"}
    result.update(warm_rerun_vs_empty(args.repeats))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
