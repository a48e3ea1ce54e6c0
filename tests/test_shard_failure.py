"""A failing shard fails only its task: the flow ends Failed naming it; a rerun redoes just that shard."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tinyemo_core.config import load_config
from tinyemo_core.stages import features, ingest

pytestmark = pytest.mark.slow


def test_one_failing_shard_then_rerun_redoes_only_it(small_config, prefect_harness) -> None:
    from pipelines.flows.extract_features import extract_features

    config = small_config()
    data = yaml.safe_load(config.read_text())
    data["profiles"]["demo"]["extraction"].update({"shard_size": 16, "retries": 1})
    config.write_text(yaml.safe_dump(data))
    cfg = load_config(config, "demo")
    ingest.make_demo_data(cfg.storage_root, cfg.spec.demo_data)
    name, spec = "demo_emoroi", cfg.datasets["demo_emoroi"]
    desc = ingest.ingest(name, spec, cfg.storage_root, ingest.ingest_fingerprint(name, spec), progress=False)
    store = features.open_store(
        cfg.storage_root, cfg.encoder_name, name, features.encoder_fingerprint(cfg.encoder)
    )
    plans = features.plan_shards(Path(desc["manifest"]), spec.root, store, 16)
    assert len(plans) >= 3
    blocked = store.shard_path(plans[1].name)  # something else occupies the shard's path: writing it fails
    blocked.mkdir(parents=True)
    (blocked / "not-a-shard").write_text("x")

    with pytest.raises(RuntimeError, match=rf"{name}/{plans[1].name}: .*rerun the flow to redo only these"):
        extract_features(config=str(config), profile="demo")
    committed = {s["name"] for s in store.manifest()["shards"]}
    assert committed == {p.name for p in plans} - {plans[1].name}  # the other shards were kept
    mtimes = {n: store.shard_path(n).stat().st_mtime_ns for n in committed}

    (blocked / "not-a-shard").unlink()
    blocked.rmdir()
    extract_features(config=str(config), profile="demo")
    assert {s["name"] for s in store.manifest()["shards"]} == {p.name for p in plans}
    assert {
        n: store.shard_path(n).stat().st_mtime_ns for n in committed
    } == mtimes  # only the failed one redone
