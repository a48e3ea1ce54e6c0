"""Orchestration overhead: Prefect per-task cost at 200+ shards, and cold vs warm build-dataset on the demo.

Usage: ``python bench/orchestration.py [--shards 240]``. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shards", type=int, default=240)
    args = parser.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        result = {"shards": args.shards, **task_overhead(args.shards), **build_times(),
                  "note": "temporary local Prefect server (SQLite), thread pool; demo = small config"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
