"""Cost of naming a model folder by content (tinyemo_core.identity): cold hash vs a later command.

A folder of ``--mb`` MiB of weight shards is hashed once (every byte read), then again as a new command
would (in-process memory dropped, the SQLite sidecar kept: no byte read), then after one shard is rewritten
in place (only that shard is read again). Prints JSON last: seconds for each and the ratios to the cold hash.

    .venv/bin/python bench/identity.py --mb 512
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=256, help="total size of the weight shards (MiB)")
    ap.add_argument("--shards", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tinyemo-identity-bench-") as tmp:
        os.environ["TINYEMO_CACHE_DIR"] = str(Path(tmp) / "cache")
        from tinyemo_core import identity

        folder = Path(tmp) / "model"
        folder.mkdir()
        per = args.mb * 2**20 // args.shards
        for i in range(args.shards):
            (folder / f"model-{i:05d}-of-{args.shards:05d}.safetensors").write_bytes(os.urandom(per))
        (folder / "config.json").write_text('{"model_type": "llama"}')

        def timed() -> tuple[float, str]:
            identity.forget_in_memory()
            start = time.perf_counter()
            ident = identity.model_dir_identity(folder)
            return time.perf_counter() - start, ident

        cold, first = timed()
        warm, again = timed()  # a new command: the sidecar answers
        (folder / f"model-00000-of-{args.shards:05d}.safetensors").write_bytes(os.urandom(per))
        one, changed = timed()  # one shard retrained in place
        assert first == again != changed
        print(json.dumps({
            "folder_mb": args.mb, "shards": args.shards,
            "cold_s": round(cold, 4), "next_command_s": round(warm, 4),
            "one_shard_rewritten_s": round(one, 4),
            "next_command_vs_cold": round(warm / cold, 5), "one_shard_vs_cold": round(one / cold, 3),
        }))


if __name__ == "__main__":
    main()
