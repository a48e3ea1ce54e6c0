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
    # every_epoch (LLaVA on EMOTIC's "best at the sixth epoch"): each epochs/epoch-<k> model beside the judged
    # one gets its own report and a row, in epoch order; identical weights here, so identical scores
    import shutil

    stage = tmp_path / "stage"
    for dest in (stage / "model", stage / "epochs" / "epoch-2", stage / "epochs" / "epoch-10"):
        shutil.copytree(model, dest)
    small = [f"evaluate_generated.{k}" for k in ("max_images=2", "max_tokens=4", "clipscore=null",
                                                 "datasets=[demo_emoset]", "every_epoch=true")]
    per_epoch = evaluate_generated(config=str(config), profile="demo", model=str(stage / "model"),
                                   overrides=small)
    rows = per_epoch["epochs"]
    assert [r.pop("epoch") for r in rows] == ["epoch-2", "epoch-10"] and rows[0] == rows[1]
    assert set(rows[0]) == {"demo_emoset.accuracy"}
    with pytest.raises(ValueError, match="no evaluate_generated"):
        evaluate_generated(config=str(config), profile="demo", overrides=["evaluate_generated=null"])
