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


def test_full_pipeline_then_warm_rerun_and_reason_cli(tmp_path: Path, prefect_harness) -> None:
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
    trained, generated = _mtimes(storage / "finetune"), _mtimes(storage / "generations")
    again = finetune_reasoning(config=str(config), profile="demo")
    assert not any(s["computed"] for s in again["stages"].values())
    assert _mtimes(storage / "finetune") == trained and _mtimes(storage / "generations") == generated
    images = sorted((tmp_path / "storage" / "demo_data" / "demo_webemo" / "test").rglob("*.jpg"))[:2]
    out = CliRunner().invoke(app, ["reason", *map(str, images), "--config", str(config), "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output[out.output.index("{"):])["rows"]
    assert len(rows) == 2 and all(r["projector_label"] for r in rows)
    with pytest.raises(ValueError, match="reasoning is not set"):
        finetune_reasoning(config=str(config), profile="demo", overrides=["reasoning=null"])
