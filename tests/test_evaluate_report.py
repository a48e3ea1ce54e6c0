"""Report files (Markdown, JSON, Parquet, PNGs) and label re-grounding without retraining."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from tinyemo_core.evaluate import regrounding_table, score_dataset, score_with_labels, summarise, write_report


def _scores() -> tuple[dict, dict, dict]:
    rng = np.random.default_rng(0)
    out, projected = {}, {}
    for name, cands, n in [("roi", ["anger", "joy", "fear"], 31), ("e6", ["joy", "sadness"], 17)]:
        vecs = rng.normal(size=(len(cands), 16))
        truth = [cands[i] for i in rng.integers(0, len(cands), n)]
        proj = vecs[[cands.index(t) for t in truth]] + rng.normal(size=(n, 16)) * 0.8
        projected[name] = proj
        out[name] = score_dataset(proj, truth, cands, vecs, sample_ids=[f"{name}-{i}" for i in range(n)])
    return out, {"roi": "held_in", "e6": "zero_shot"}, projected


def test_write_report_files_exist_and_parse(tmp_path: Path) -> None:
    scores, roles, projected = _scores()
    summary = summarise(scores, roles)
    paths = write_report(summary, scores, tmp_path, title="demo run", projected={"e6": projected["e6"]})
    assert "tsne:roi" not in paths  # t-SNE only for the datasets whose projections are passed
    md = paths["report_md"].read_text()
    assert "| roi | held-in | 31 |" in md and "| e6 | zero-shot | 17 |" in md
    assert f"{100 * summary['total']:.2f}" in md and "Zero-shot Accuracy" in md
    report = json.loads(paths["report_json"].read_text())
    assert report["summary"]["total"] == summary["total"]
    assert report["datasets"]["roi"]["confusion"] == scores["roi"].confusion.tolist()
    table = pq.read_table(paths["predictions"]).to_pylist()
    assert len(table) == 31 + 17
    row = table[0]
    assert row["dataset"] == "roi" and row["sample_id"] == "roi-0"
    assert row["ranked_labels"][0] == row["predicted"]
    assert sorted(row["ranked_labels"]) == ["anger", "fear", "joy"]
    assert row["ranked_scores"] == sorted(row["ranked_scores"], reverse=True)
    assert sum(r["correct"] for r in table if r["dataset"] == "e6") == round(scores["e6"].accuracy * 17)
    for key in ("confusion:roi", "confusion:e6", "tsne:e6"):
        with Image.open(paths[key]) as img:
            assert img.format == "PNG" and img.size[0] > 100


def test_regrounding_changes_only_the_regrounded_class() -> None:
    """Table VII: 'joy' re-grounded as 'cheerful and content'. Images are near 'cheerful and content', so joy
    accuracy rises; images of classes whose vectors did not change keep their predictions unless they now
    fall to the new 'joy' vector."""
    cands = ["joy", "sadness", "fear"]
    texts = {"joy": np.array([0.0, 0.0, 1.0, 0.0]), "sadness": np.array([1.0, 0.0, 0.0, 0.0]),
             "fear": np.array([0.0, 1.0, 0.0, 0.0]), "cheerful and content": np.array([0.0, 0.0, 0.0, 1.0])}
    proj = np.array([[0.5, 0.0, 0.2, 1.0], [0.4, 0.1, 0.2, 1.0],   # joy images: nearer "cheerful..."
                     [1.0, 0.1, 0.0, 0.0], [0.9, 0.3, 0.1, 0.2],   # sadness
                     [0.0, 1.0, 0.0, 0.1]])                       # fear
    truth = ["joy", "joy", "sadness", "sadness", "fear"]
    base = score_with_labels(proj, truth, cands, {}, texts)
    moved = score_with_labels(proj, truth, cands, {"joy": "cheerful and content"}, texts)
    assert base.per_class_accuracy()["joy"] == 0.0 and moved.per_class_accuracy()["joy"] == 1.0
    assert moved.predicted[2:] == base.predicted[2:]
    assert moved.candidates == cands  # predictions stay in class names
    rows = {r["class"]: r for r in regrounding_table(base, {"cheerful": moved})}
    assert rows["joy"]["cheerful Δ"] == 1.0 and rows["sadness"]["cheerful Δ"] == 0.0
    assert rows["overall"]["cheerful"] == moved.accuracy
    try:
        score_with_labels(proj, truth, cands, {"joy": "colorful"}, texts)
    except KeyError as err:
        assert "colorful" in str(err)
    else:
        raise AssertionError("an unembedded label text must be reported")
