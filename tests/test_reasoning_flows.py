"""The hand-off through Prefect on the demo: full-pipeline = build-dataset -> generate-qa (in-process tiny
VLM) -> both fine-tuning stages -> conditional reasoning; a warm rerun trains and generates nothing; `tinyemo
reason` on image files; a profile without a reasoning block gets a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def _patch_store(config: Path) -> None:
    """A complete patch store for demo_webemo shaped like the tiny reasoner's tower (16 tokens x 32)."""
    import numpy as np

    from tinyemo_core.config import load_config
    from tinyemo_core.stages import features, ingest
    from tinyemo_core.store.manifests import read_manifest

    cfg = load_config(config, "demo")
    plan = ingest.plan("demo_webemo", cfg.datasets["demo_webemo"], cfg.storage_root)
    table = read_manifest(plan.path, ok_only=True)
    store = features.open_store(cfg.storage_root, cfg.encoder_name, "demo_webemo",
                                features.encoder_fingerprint(cfg.encoder), "patches")
    ids = table["image_id"].to_pylist()
    vectors = np.random.default_rng(0).standard_normal((len(ids), 16 * 32)).astype(np.float32)
    shards = [store.write_shard(p.name, p.image_ids, vectors[[ids.index(i) for i in p.image_ids]],
                                np.arange(len(p.image_ids)), {})
              for p in store.plan(zip(ids, table["path"].to_pylist(), strict=True), 64)]
    store.commit(shards)


def _reason_cli_against_two_servers(config: Path, model: Path, images: list[Path]) -> None:
    """`tinyemo reason --reasoner` with the reasoner served over HTTP (docs/generation.md "served route"):
    the project's serve-generator (uvicorn) serving the trained folder, and a second-stack aiohttp server;
    a warm rerun sends no chat completion."""
    from openai_servers import AiohttpOpenAI, serve_generator_thread
    from typer.testing import CliRunner

    from pipelines.cli import app

    other = AiohttpOpenAI()
    try:
        with serve_generator_thread(model, "reasoner") as (url, count):
            for base, served, sent in ((url, "reasoner", count), (other.url, other.model_id,
                                                                  lambda: other.chat_completions)):
                args = ["reason", *map(str, images), "--config", str(config), "--json",
                        "--reasoner", str(model), "--set", "reasoning.reason.backend=openai",
                        "--set", f"reasoning.reason.base_url={base}",
                        "--set", f"reasoning.reason.served_model={served}"]
                before = sent()
                out = CliRunner().invoke(app, args)
                assert out.exit_code == 0, out.output
                assert len(json.loads(out.output[out.output.index("{"):])["rows"]) == 2
                first = sent() - before
                assert first >= 2
                again = CliRunner().invoke(app, args)
                assert again.exit_code == 0, again.output
                assert sent() - before == first  # warm: nothing sent
    finally:
        other.close()


def test_full_pipeline_then_warm_rerun_and_reason_cli(tmp_path: Path, prefect_harness, monkeypatch) -> None:
    from conftest import write_small_config
    from typer.testing import CliRunner

    from pipelines.cli import app
    from pipelines.flows.reasoning import finetune_reasoning, full_pipeline

    config = write_small_config(tmp_path)
    first = full_pipeline(config=str(config), profile="demo")
    stages = first["finetune"]["stages"]
    assert set(stages) == {"pretrain", "finetune"} and all(s["computed"] for s in stages.values())
    model = Path(first["finetune"]["model"])
    assert (model / "config.json").exists() and (model.parent / "train_result.json").exists()
    reason = first["reason"]
    assert reason["images"] > 0 and (Path(reason["path"]) / "comparison.md").exists()
    storage = tmp_path / "storage"
    # a warm rerun of the whole pipeline through Prefect runs no stage body: every plan is complete, each
    # store is read back; no file under the store root is written (instructions/ included)
    from pipelines.runtime.caching import stage_bodies

    ran = dict(stage_bodies)
    bodies = {"ingest_task", "train_task", "instructions_task", "finetune_stage_task", "reason_task"}
    assert bodies <= set(ran)
    before = _mtimes(storage)
    import tinyemo_core.store.manifests as manifests_store
    from pipelines.runtime import memo

    walked, loads, walk, load = [], [], manifests_store._walk, memo.load_config
    monkeypatch.setattr(manifests_store, "_walk", lambda root: walked.append(str(root)) or walk(root))
    monkeypatch.setattr(memo, "load_config", lambda *a, **k: loads.append(a) or load(*a, **k))
    edited = config.with_name("edited.yaml")  # a config not yet loaded in this process: loaded exactly once
    edited.write_text(config.read_text())
    again = full_pipeline(config=str(edited), profile="demo")
    assert dict(stage_bodies) == ran, {k: v - ran.get(k, 0) for k, v in stage_bodies.items()}
    assert len(loads) == 1 and len(walked) == len(set(walked)) == 4  # each dataset tree walked once
    assert _mtimes(storage) == before
    assert not any(s["computed"] for s in again["finetune"]["stages"].values())
    assert again["finetune"]["model"] == first["finetune"]["model"] and again["run_dir"] == first["run_dir"]
    assert again["reason"]["path"] == first["reason"]["path"]
    images = sorted((tmp_path / "storage" / "demo_data" / "demo_webemo" / "test").rglob("*.jpg"))[:2]
    out = CliRunner().invoke(app, ["reason", *map(str, images), "--config", str(config), "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output[out.output.index("{"):])["rows"]
    assert len(rows) == 2 and all(r["projector_label"] for r in rows)
    _reason_cli_against_two_servers(config, model, images)
    # reasoning.patch_encoder: a complete patch-token store for the exports' dataset feeds training instead
    # of the live ViT (default on when complete); it is part of each stage's fingerprint
    _patch_store(config)
    cached = finetune_reasoning(config=str(config), profile="demo",
                                overrides=["reasoning.patch_encoder=demo-tiny-clip"])
    assert all(s["computed"] for s in cached["stages"].values())
    assert cached["model"] != first["finetune"]["model"]
    with pytest.raises(ValueError, match="reasoning.patch_encoder"):
        finetune_reasoning(config=str(config), profile="demo", overrides=["reasoning.patch_encoder=nope"])
    with pytest.raises(ValueError, match="reasoning is not set"):
        finetune_reasoning(config=str(config), profile="demo", overrides=["reasoning=null"])
