"""build-dataset end to end through Prefect on a small demo; caching proven by observing the stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _snapshot(root: Path, pattern: str) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.glob(pattern)}


def test_build_dataset_end_to_end_and_cached(tmp_path: Path, small_config, prefect_harness) -> None:
    from pipelines.flows.build_dataset import build_dataset

    config = small_config()
    storage = tmp_path / "storage"
    first = build_dataset(config=str(config), profile="demo")

    report = json.loads((Path(first["report_dir"]) / "report.json").read_text())
    datasets = report["summary"]["datasets"]
    assert set(datasets) == {"demo_emoroi", "demo_emoset", "demo_webemo", "demo_synonyms"}
    assert datasets["demo_synonyms"]["role"] == "zero_shot"
    # held-in accuracy well above chance (1/6, 1/8, ~1/12)
    for name in ("demo_emoroi", "demo_emoset"):
        assert datasets[name]["accuracy"] > 2.0 / len(report["datasets"][name]["candidates"])
    assert (Path(first["report_dir"]) / "report.md").exists()
    # the corrupt demo image was quarantined, not fatal
    manifests = list((storage / "manifests").glob("*/*.json"))
    quarantined = [json.loads(m.read_text())["counts"]["quarantined"] for m in manifests]
    assert sum(sum(q.values()) for q in quarantined) >= 1

    # every store records the Prefect run that produced it (tinyemo status shows it)
    from tinyemo_core.store.inventory import inventory

    entries = inventory(storage)
    chain = {"manifest", "features", "labels", "run", "evaluation"}
    assert {e.kind for e in entries} == chain | {"demo-data", "splits"}
    assert all(e.complete for e in entries), entries
    assert all(e.produced_by.startswith("build-dataset/") for e in entries if e.kind in chain), entries

    features = _snapshot(storage, "features/**/*")
    labels = _snapshot(storage, "labels/**/*")
    runs = _snapshot(storage, "runs/**/*")
    second = build_dataset(config=str(config), profile="demo")
    assert second["report_dir"] == first["report_dir"]
    assert _snapshot(storage, "features/**/*") == features  # no feature extracted, nothing rewritten
    assert _snapshot(storage, "labels/**/*") == labels  # no label embedded
    assert _snapshot(storage, "runs/**/*") == runs  # no training, no evaluation

    # a new label backbone: labels re-embedded, projector retrained, zero image features extracted
    third = build_dataset(config=str(config), profile="demo", overrides=["backbone=tiny-random-llama"])
    assert _snapshot(storage, "features/**/*") == features
    assert third["run_dir"] != first["run_dir"]
    assert {p.name for p in (storage / "labels").iterdir()} == {"minilm", "tiny-random-llama"}
    assert (Path(third["report_dir"]) / "report.json").exists()
