"""kill -9 at several points of an incremental extraction: the committed store never holds a temporary, and a
rerun ends with exactly what its manifest lists (and the same content as an uninterrupted run)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyemo_core.store.features import FeatureStore

ROOT = Path(__file__).resolve().parents[1]

# Writes the store for ids 0..n-1 (shards of 4, vectors from the id) through the real stage code; with
# KILL_AT set, SIGKILLs itself at that point: "<file glob>:before" (the temporary is complete, not yet
# renamed) or "<file glob>:after" (just renamed into place).
CHILD = r"""
import fnmatch, os, signal, sys
from pathlib import Path
import numpy as np
from tinyemo_core.store import atomic
from tinyemo_core.store.features import FeatureStore
from tinyemo_core.stages.features import commit_store

root, n, kill_at = Path(sys.argv[1]), int(sys.argv[2]), os.environ.get("KILL_AT")
real = os.replace
seen = {}
def replace(src, dst):
    pattern, when = kill_at.rsplit(":", 1)
    hit = fnmatch.fnmatch(Path(dst).name, pattern)
    if hit:
        seen[pattern] = seen.get(pattern, 0) + 1
    last = hit and seen[pattern] == 2 if pattern.startswith("part-") else hit
    if last and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)
    if last and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)
if kill_at:
    atomic.os.replace = replace
store = FeatureStore(root, "enc")
items = [(f"{i:04d}", "x") for i in range(n)]
infos = []
for p in store.plan(items, shard_size=4):
    if store.shard_done(p.name):
        infos.append(store.shard_info(p.name))
        continue
    vec = np.stack([np.random.default_rng(int(i)).standard_normal(8) for i in p.image_ids])
    infos.append(store.write_shard(p.name, p.image_ids, vec, np.arange(len(vec)), {}))
commit_store(store, infos)
"""


def _run(root: Path, n: int, kill_at: str | None = None) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("KILL_AT", None)
    if kill_at:
        env["KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-c", CHILD, str(root), str(n)], env=env, cwd=ROOT).returncode


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> FeatureStore:
    """The uninterrupted run."""
    store = FeatureStore(tmp_path_factory.mktemp("reference") / "store", "enc")
    assert _run(store.root, 20) == 0
    return store


def _listed(store: FeatureStore) -> set[str]:
    data = store.manifest()
    return {s["name"] for s in data["shards"]} | {data["faiss"]["file"], "_manifest.json"}


@pytest.mark.parametrize("kill_at", ["part-*:before", "part-*:after", "index-*:before", "index-*:after",
                                     "_manifest.json:before"])
def test_kill_during_incremental_extraction(tmp_path: Path, reference: FeatureStore, kill_at: str) -> None:
    store = FeatureStore(tmp_path / "store", "enc")
    assert _run(store.root, 8) == 0  # committed: 2 shards
    committed = store.manifest()
    assert _run(store.root, 20, kill_at) == -signal.SIGKILL
    assert not list(store.root.glob("*.tmp")), "a temporary was left inside the committed store"
    assert store.manifest() == committed  # still the old, complete store
    assert len(store.load()[0]) == 8
    staged = list(store.staging.glob("*.tmp"))
    assert bool(staged) == kill_at.endswith(":before")  # the half-done write sits where no reader looks
    assert _run(store.root, 20) == 0  # the rerun adopts what was renamed, computes the rest, commits
    assert {p.name for p in store.root.iterdir()} == _listed(store)
    assert not store.staging.exists() or not any(store.staging.iterdir())
    assert store.manifest()["content_hash"] == reference.manifest()["content_hash"]
    ids, vecs = store.load()
    ref_ids, ref_vecs = reference.load()
    assert ids == ref_ids and np.array_equal(vecs, ref_vecs)


def test_stale_temporaries_only_of_dead_writers(tmp_path: Path) -> None:
    from tinyemo_core.store.atomic import _HOST, clear_stale_temporaries

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    mine = tmp_path / f".part-a.arrow.{_HOST}-{os.getpid()}.abc123.tmp"
    gone = tmp_path / f".part-b.arrow.{_HOST}-{dead}.abc123.tmp"
    foreign = tmp_path / ".part-c.arrow.other.tmp"  # unknown writer: only removed once old
    for p in (mine, gone, foreign):
        p.write_bytes(b"partial")
    assert clear_stale_temporaries(tmp_path) == [gone]
    os.utime(foreign, (0, 0))
    assert clear_stale_temporaries(tmp_path) == [foreign] and mine.exists()
