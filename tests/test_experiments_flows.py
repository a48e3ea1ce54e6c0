"""The experiment flows through Prefect on a tiny demo: Table III ablation, Table IV grid, re-grounding.

One store (tmp, module scope) serves every test, so features are extracted once for the whole module; the
tests observe the stores (file mtimes) to prove that caching, not luck, kept them untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import write_small_config

pytestmark = pytest.mark.slow

HELD_IN = ["demo_emoroi", "demo_emoset"]
OVERRIDES = [f"held_in={json.dumps(HELD_IN)}", "training.epochs=6"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return write_small_config(tmp_path_factory.mktemp("exp"))


def _mtimes(root: Path, pattern: str) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.glob(pattern) if p.is_file()}


def test_dataset_ablation_table(demo: Path, prefect_harness) -> None:
    from pipelines.flows.experiments import dataset_ablation

    storage = demo.parent / "storage"
    result = dataset_ablation(config=str(demo), profile="demo", overrides=OVERRIDES)
    rows = result["rows"]
    marks = [[d for d in HELD_IN if r[f"train:{d}"] == "✓"] for r in rows]
    assert marks == [["demo_emoroi"], ["demo_emoset"], HELD_IN]
    order = [*HELD_IN, "demo_synonyms"]
    for r in rows:
        assert set(r) == {*(f"train:{d}" for d in HELD_IN), *order, "Total", "Zero-shot", "Unseen"}
    # features were extracted once: every feature file predates the first row's training
    features = _mtimes(storage, "features/**/*")
    first_train = min((Path(run["run_dir"]) / "config.json").stat().st_mtime_ns for run in result["runs"])
    assert features and max(features.values()) < first_train
    assert len({run["run_dir"] for run in result["runs"]}) == 3

    # the emoroi-only row, recomputed independently from its predictions file
    run, row = result["runs"][0], rows[0]
    preds = pq.read_table(Path(run["report_dir"]) / "predictions.parquet").to_pylist()
    acc = {n: sum(p["true_label"] == p["predicted"] for p in preds if p["dataset"] == n)
           / sum(p["dataset"] == n for p in preds) for n in order}
    assert {p["dataset"] for p in preds} == set(order)
    for name in order:
        assert row[name] == pytest.approx(acc[name])
    assert row["Zero-shot"] == pytest.approx(acc["demo_synonyms"])  # the profile's zero-shot set only
    assert row["Unseen"] == pytest.approx((acc["demo_emoset"] + acc["demo_synonyms"]) / 2)
    assert row["Total"] == pytest.approx(sum(acc.values()) / 3)
    # trained on its own data, a held-in dataset beats the row that never saw it
    assert rows[0]["demo_emoroi"] > rows[1]["demo_emoroi"]

    md = Path(result["markdown"]).read_text()
    header = "| train:demo_emoroi | train:demo_emoset | demo_emoroi | demo_emoset | demo_synonyms | Total |"
    assert header in md
    assert f"{100 * row['Total']:.2f}" in md and "scored zero-shot" in md
    saved = json.loads(Path(result["json"]).read_text())
    assert saved["rows"] == rows and Path(result["out_dir"]).parent == storage / "experiments"

    # a second run is fully cached: nothing extracted, trained or evaluated again; same table folder
    runs = _mtimes(storage, "runs/**/*")
    again = dataset_ablation(config=str(demo), profile="demo", overrides=OVERRIDES)
    assert again["rows"] == rows and again["out_dir"] == result["out_dir"]
    assert _mtimes(storage, "features/**/*") == features and _mtimes(storage, "runs/**/*") == runs


def test_ablation_rejects_unknown_dataset(demo: Path, prefect_harness) -> None:
    from pipelines.flows.experiments import dataset_ablation

    args = {"config": str(demo), "profile": "demo", "overrides": OVERRIDES}
    with pytest.raises(ValueError, match=r"unknown held-in datasets of profile 'demo' \['fi'\]"):
        dataset_ablation(**args, datasets=["demo_emoroi", "fi"])
    with pytest.raises(ValueError, match="demo_synonyms"):  # zero-shot, not held-in
        dataset_ablation(**args, datasets=["demo_synonyms"])


def test_encoder_backbone_grid(demo: Path, prefect_harness) -> None:
    from pipelines.flows.experiments import encoder_backbone_grid
    from pipelines.flows.extract_features import extract_features

    storage = demo.parent / "storage"
    extract_features(config=str(demo), profile="demo", overrides=OVERRIDES)  # cached when the ablation ran
    features = _mtimes(storage, "features/**/*")
    assert features
    result = encoder_backbone_grid(config=str(demo), profile="demo", overrides=OVERRIDES)
    rows = result["rows"]
    assert [(r["encoder"], r["backbone"]) for r in rows] == [
        ("demo-tiny-clip", "minilm"), ("demo-tiny-clip", "tiny-random-llama")]
    assert rows[0]["Params"] != rows[1]["Params"]  # output width = the backbone's embedding width
    assert {p.name for p in (storage / "labels").iterdir()} >= {"minilm", "tiny-random-llama"}
    assert _mtimes(storage, "features/**/*") == features  # every row reuses the cached image features
    for r in rows:
        assert 0.0 <= r["Total"] <= 1.0 and r["Zero-shot"] == r["demo_synonyms"]
    assert "| demo-tiny-clip | tiny-random-llama |" in Path(result["markdown"]).read_text()
    with pytest.raises(ValueError, match="unknown backbones"):
        encoder_backbone_grid(config=str(demo), profile="demo", overrides=OVERRIDES, backbones=["gpt-9"])


def test_reground_changes_only_the_regrounded_class(demo: Path, prefect_harness) -> None:
    from pipelines.flows.experiments import reground_labels
    from pipelines.flows.train_projector import train_projector

    storage = demo.parent / "storage"
    train_projector(config=str(demo), profile="demo", overrides=OVERRIDES)  # cached if the ablation ran
    runs = _mtimes(storage, "runs/**/*")
    variants = {"same": {"texts": {"joy": "joy"}}, "market": {"texts": {"joy": "stock market report"}}}
    result = reground_labels(config=str(demo), profile="demo", overrides=OVERRIDES, variants=variants)
    assert _mtimes(storage, "runs/**/*") == runs  # no training, no file of the run touched
    labels = _mtimes(storage, "labels/**/*")
    preds = pq.read_table(Path(result["out_dir"]) / "predictions.parquet").to_pylist()
    # an identical text reproduces the baseline exactly (cached vector, same scoring)
    assert all(p["pred:same"] == p["baseline"] for p in preds)
    changed = [p for p in preds if p["pred:market"] != p["baseline"]]
    assert changed  # the re-grounding does something...
    # ...a sample can only move to or away from the re-grounded class, and only where "joy" is a label
    assert all("joy" in (p["baseline"], p["pred:market"]) for p in changed)
    assert {p["dataset"] for p in changed} == {"demo_emoroi"}
    rows = {r["class"]: r for r in result["datasets"]["demo_emoroi"]["rows"]}
    assert rows["joy"]["same"] == rows["joy"]["baseline"]
    assert result["embedded"] == 1  # only the new text was embedded; "joy" came from the store
    # rerun: cached, nothing trained and no label embedded again
    again = reground_labels(config=str(demo), profile="demo", overrides=OVERRIDES, variants=variants)
    assert again["out_dir"] == result["out_dir"]
    assert _mtimes(storage, "runs/**/*") == runs and _mtimes(storage, "labels/**/*") == labels
