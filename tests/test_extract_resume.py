"""Sharded extraction survives kill -9 (a real subprocess running the flow) and adds only new images."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tinyemo_core.config import load_config
from tinyemo_core.stages import features, ingest
from tinyemo_core.store.vectors import read_shard

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def _prepare(cfg) -> dict[str, dict]:
    ingest.make_demo_data(cfg.storage_root, cfg.spec.demo_data)
    out = {}
    for name, spec in cfg.datasets.items():
        out[name] = ingest.ingest(
            name, spec, cfg.storage_root, ingest.ingest_fingerprint(name, spec), progress=False
        )
    return out


def _extract_all(cfg, manifests: dict[str, dict]) -> None:
    """An uninterrupted extraction with the core stage functions (the reference result)."""
    fp = features.encoder_fingerprint(cfg.encoder)
    for name, desc in manifests.items():
        store = features.open_store(cfg.storage_root, cfg.encoder_name, name, fp)
        plans = features.plan_shards(Path(desc["manifest"]), cfg.datasets[name].root, store, 8)
        store.commit([features.extract_shard(cfg.encoder, store, p) for p in plans])


def _rows(storage: Path) -> dict[str, bytes]:
    """image_id -> vector bytes over every shard listed by every feature-store manifest."""
    out: dict[str, bytes] = {}
    for manifest in storage.glob("features/*/*/_manifest.json"):
        for shard in yaml.safe_load(manifest.read_text())["shards"]:
            data = read_shard(manifest.parent / shard["name"])
            for image_id, vec in zip(data.ids, data.vectors, strict=True):
                assert image_id not in out, f"duplicate row for {image_id}"
                out[image_id] = np.asarray(vec, np.float16).tobytes()
    return out


def test_kill_during_extraction_then_rerun_equals_uninterrupted(tmp_path: Path, small_config) -> None:
    config = small_config()
    data = yaml.safe_load(config.read_text())
    data["profiles"]["demo"]["extraction"]["shard_size"] = 4
    data["profiles"]["demo"]["extraction"]["max_tasks"] = 3  # several shards per task: resume is per shard
    data["encoders"]["demo-tiny-clip"]["batch_size"] = 1
    config.write_text(yaml.safe_dump(data))
    cfg = load_config(config, "demo")
    _prepare(cfg)

    ref_cfg = load_config(config, "demo", [f"storage_root={tmp_path / 'reference'}"])
    shutil.copytree(cfg.storage_root / "demo_data", ref_cfg.storage_root / "demo_data")
    _extract_all(ref_cfg, _prepare(ref_cfg))
    reference = _rows(ref_cfg.storage_root)

    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "extract-features", "--config", str(config)]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    feat_dir = cfg.storage_root / "features"
    deadline = time.time() + 240
    try:
        while time.time() < deadline and len(list(feat_dir.glob("*/*/part-*.arrow"))) < 3:
            assert proc.poll() is None, "extraction finished before it could be killed"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # the flow, its task threads and its temporary Prefect server
    finally:
        proc.wait(timeout=30)
    written = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in feat_dir.glob("*/*/part-*.arrow")}
    assert len(written) >= 3
    assert not list(feat_dir.glob("*/*/*.tmp")), "a temporary was left inside a store folder"
    assert not all((d / "_manifest.json").exists() for d in feat_dir.glob("*/*")), (
        "killed after the last commit"
    )

    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert _rows(cfg.storage_root) == reference
    # shards written before the kill were adopted, not recomputed: same inode, same mtime
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in written} == written
    for manifest in feat_dir.glob("*/*/_manifest.json"):  # each store holds exactly what its manifest lists
        listed = yaml.safe_load(manifest.read_text())
        names = {s["name"] for s in listed["shards"]} | {manifest.name, listed["faiss"]["file"]}
        assert {p.name for p in manifest.parent.iterdir()} == names


def test_adding_images_extracts_only_the_new_ones(tmp_path: Path, small_config) -> None:
    cfg = load_config(small_config(), "demo")
    manifests = _prepare(cfg)
    _extract_all(cfg, manifests)
    name = "demo_synonyms"  # emotion6 layout: no split file, every image in the folders counts
    spec = cfg.datasets[name]
    before = _rows(cfg.storage_root)
    source = next(spec.root.glob("images/*/*.png"))
    from PIL import Image

    img = Image.open(source).convert("RGB").rotate(90)
    img.save(source.parent / "added_new.jpg")
    desc = ingest.ingest(name, spec, cfg.storage_root, ingest.ingest_fingerprint(name, spec), progress=False)
    assert desc["computed"] and desc["manifest"] != manifests[name]["manifest"]
    store = features.open_store(
        cfg.storage_root, cfg.encoder_name, name, features.encoder_fingerprint(cfg.encoder)
    )
    plans = features.plan_shards(Path(desc["manifest"]), spec.root, store, 8)
    assert [len(p.paths) for p in plans] == [1] and plans[0].paths[0].endswith("added_new.jpg")
    store.commit([features.extract_shard(cfg.encoder, store, p) for p in plans])
    after = _rows(cfg.storage_root)
    assert len(after) == len(before) + 1 and {k: after[k] for k in before} == before
