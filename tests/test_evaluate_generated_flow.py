"""evaluate-generated through Prefect on the demo: a saved tiny VLM answers, the report lands, a rerun asks
nothing (the plan hashes the model folder without loading it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_evaluate_generated_flow_reports_and_caches(tmp_path: Path, prefect_harness) -> None:
    from conftest import write_small_config

    from pipelines.flows.evaluate_generated import evaluate_generated
    from tinyemo_core.generate.tiny_model import build_tiny_vlm

    config = write_small_config(tmp_path)
    model = build_tiny_vlm(tmp_path / "tiny-vlm")
    overrides = ["evaluate_generated.max_images=3", "evaluate_generated.max_tokens=8"]
    first = evaluate_generated(config=str(config), profile="demo", overrides=overrides, model=str(model))
    report = json.loads((Path(first["report_dir"]) / "report.json").read_text())
    assert first["computed"] and set(report["summary"]["datasets"]) == {"demo_emoset", "demo_synonyms"}
    assert "clipscore" in report["summary"] and report["table_rows"]
    answers = sorted((tmp_path / "storage" / "answers").rglob("*.jsonl"))
    assert answers
    sizes = [p.stat().st_size for p in answers]
    again = evaluate_generated(config=str(config), profile="demo", overrides=overrides, model=str(model))
    assert not again["computed"] and again["report_dir"] == first["report_dir"]
    assert [p.stat().st_size for p in sorted((tmp_path / "storage" / "answers").rglob("*.jsonl"))] == sizes
    with pytest.raises(ValueError, match="no evaluate_generated"):
        evaluate_generated(config=str(config), profile="demo", overrides=["evaluate_generated=null"])
