"""Experiment tables, subsets, name checks, re-grounding variants and the label-store lookup (no Prefect)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from tests.conftest import ROOT
from tinyemo_core.stages import experiments as exp
from tinyemo_core.store.experiments import experiment_dir


def test_subsets_follow_table_iii_order() -> None:
    subsets = exp.held_in_subsets(["roi", "emoset", "webemo"])
    assert subsets == [("roi",), ("emoset",), ("webemo",), ("roi", "emoset"), ("roi", "webemo"),
                       ("emoset", "webemo"), ("roi", "emoset", "webemo")]
    assert len(exp.held_in_subsets(list("abcd"))) == 15


def test_check_names_rejects_clearly() -> None:
    assert exp.check_names(["b", "a", "b"], ["a", "b"], "datasets") == ["b", "a"]
    with pytest.raises(ValueError, match=r"unknown datasets \['fi'\]; choose from: a, b"):
        exp.check_names(["a", "fi"], ["a", "b"], "datasets")
    with pytest.raises(ValueError, match="no datasets given"):
        exp.check_names([], ["a"], "datasets")


def test_row_reproduces_the_papers_table_iii_metrics() -> None:
    # TinyEmo Table III, first row (EmotionROI only): Total 41.81, Zero-shot 43.04
    acc = {"emotionroi": 76.77, "emoset": 31.77, "webemo": 10.78, "emotion6": 87.04, "fi": 23.83,
           "artphoto": 36.23, "abstract": 15.04, "unbiasedemo": 53.04}
    zero = ["emotion6", "fi", "artphoto", "abstract", "unbiasedemo"]
    row = exp.experiment_row({"train:emotionroi": "✓"}, {k: v / 100 for k, v in acc.items()},
                             ["emotionroi"], zero)
    assert round(100 * row["Total"], 2) == 41.81
    assert round(100 * row["Zero-shot"], 2) == 43.04
    assert row["Unseen"] == pytest.approx(np.mean([acc[k] for k in acc if k != "emotionroi"]) / 100)
    md = exp.experiment_markdown("T", ["train:emotionroi"], list(acc), [row], exp.ABLATION_NOTES)
    assert "| ✓ | 76.77 | 31.77 | 10.78 | 87.04 | 23.83 | 36.23 | 15.04 | 53.04 | 41.81 | 43.04 |" in md
    assert "scored zero-shot" in md


def test_role_overrides_resolve_to_roles() -> None:
    from tinyemo_core.config import load_config

    order = ["demo_emoroi", "demo_emoset", "demo_webemo", "demo_synonyms"]
    cfg = load_config(ROOT / "flows.yaml", "demo", exp.role_overrides(("demo_emoset",), order))
    assert cfg.roles == {"demo_emoset": "held_in", "demo_emoroi": "zero_shot", "demo_webemo": "zero_shot",
                         "demo_synonyms": "zero_shot"}


def test_experiment_outputs(tmp_path: Path) -> None:
    rows = [exp.experiment_row({"encoder": "e", "backbone": "b"}, {"x": 0.5, "z": 0.25}, ["x"], ["z"])]
    a = experiment_dir(tmp_path, "grid", ["r1"])
    assert a == experiment_dir(tmp_path, "grid", ["r1"]) != experiment_dir(tmp_path, "grid", ["r2"])
    paths = exp.write_experiment(a, "Grid", ["encoder", "backbone"], ["x", "z"], rows, "n.", {"runs": []})
    assert json.loads(Path(paths["json"]).read_text())["rows"] == rows
    assert "| e | b | 50.00 | 25.00 | 37.50 | 25.00 | 25.00 |" in Path(paths["markdown"]).read_text()


def test_grounding_variant() -> None:
    g = exp.Grounding(texts={"joy": "cheerful and content"})
    assert g.text_for("joy", "{label}") == "cheerful and content"
    assert g.text_for("fear", "a scene evoking {emotion} to viewers") == "a scene evoking fear to viewers"
    assert exp.Grounding(template="a photo of {label}").text_for("fear", "{label}") == "a photo of fear"
    with pytest.raises(ValidationError, match="template"):
        exp.Grounding(template="no placeholder")
    with pytest.raises(ValidationError):
        exp.Grounding(text={"joy": "x"})


def test_label_lookup_embeds_only_missing_texts(tmp_path: Path) -> None:
    from tinyemo_core.config import load_flows
    from tinyemo_core.encoders.labels import load_label_embedder
    from tinyemo_core.stages.label_lookup import label_vectors

    spec = load_flows(ROOT / "flows.yaml").backbones["minilm"]
    first = label_vectors(spec, "minilm", tmp_path, ["joy", "cheerful and content"])
    assert (first.cached, first.embedded) == (0, 2) and len(first.tables) == 1
    again = label_vectors(spec, "minilm", tmp_path, ["sadness", "joy"])
    assert (again.cached, again.embedded) == (1, 1)
    np.testing.assert_array_equal(again.vectors["joy"], first.vectors["joy"])
    direct = load_label_embedder(spec, tmp_path / "models").embed(["joy", "sadness"])
    np.testing.assert_allclose(again.stack(["joy", "sadness"]), direct, rtol=1e-6, atol=1e-6)
    assert len(list((tmp_path / "labels" / "minilm").glob("*.parquet"))) == 2
