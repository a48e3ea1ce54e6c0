"""Features-only datasets (issue 21): the three source kinds (the authors' .pt tree with its validation/
copy of test/, .npy + CSV table, Parquet table of name/label/split/vector), no image anywhere, then train and
evaluate through Prefect with no image encoder loaded; flows that need pixels refuse in one line; the README's
`tinyemo import-features fi /cache/FI_features --encoder clip-vit-l-14` runs as written, touching only fi."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
DIM = 24
EKMAN = ("anger", "disgust", "fear", "joy", "sadness", "surprise")
MIKELS = ("amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness")


def _vector(label: str, rng: np.random.Generator) -> np.ndarray:
    centre = np.zeros(DIM, np.float32)
    centre[sum(map(ord, label)) % DIM] = 3.0
    centre[(sum(map(ord, label)) * 7) % DIM] += 2.0
    return centre + rng.normal(0, 0.4, DIM).astype(np.float32)


def authors_tree(out: Path, classes, per_class: int, rng: np.random.Generator, prefix: str = "") -> None:
    """The authors' layout: [<prefix>/]<split>/<class>/<n>.pt, bare fp16 (d,) tensors; validation/ is the
    test subset saved again (a few vectors off by fp16 rounding, as in their Emotion6 sample)."""
    for label in classes:
        for i in range(per_class):
            split = "test" if i % 3 == 0 else "train"
            vec = torch.from_numpy(_vector(label, rng)).half()
            target = out / prefix / split / label / f"{i}.pt"
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.save(vec.clone(), target)
            if split == "test":
                copy = out / prefix / "validation" / label / f"{i}.pt"
                copy.parent.mkdir(parents=True, exist_ok=True)
                torch.save((vec.float() + (i % 2) * 1e-3).half(), copy)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("featonly")
    rng = np.random.default_rng(0)
    authors_tree(base / "e6_features", EKMAN, 9, rng, prefix="images")
    names, labels, splits, rows = [], [], [], []
    for label in EKMAN:
        for i in range(8):
            names.append(f"{label}/img_{i}.jpg")
            labels.append(label)
            splits.append("test" if i % 4 == 0 else "train")
            rows.append(_vector(label, rng))
    np.save(base / "roi.npy", np.stack(rows))
    (base / "roi.csv").write_text("name,label,split\n" + "\n".join(
        f"{n},{lab},{s}" for n, lab, s in zip(names, labels, splits, strict=True)) + "\n")
    table = pa.table({"name": [f"art_{i}" for i in range(30)],
                      "label": [EKMAN[i % 6] for i in range(30)],
                      "split": ["test"] * 30,
                      "vector": pa.array([_vector(EKMAN[i % 6], rng).tolist() for i in range(30)],
                                         pa.list_(pa.float32(), DIM))})
    pq.write_table(table, base / "art.parquet")
    data = yaml.safe_load((ROOT / "flows.yaml").read_text())
    data["storage_root"] = str(base / "storage")
    data["datasets"].update({
        "e6_feat": {"layout": "emotion6", "taxonomy": "ekman6",
                    "features": {"path": str(base / "e6_features"), "encoder": "clip-vit-l-14"}},
        "roi_feat": {"layout": "emotionroi", "root": str(base / "no-images-here"),
                     "features": {"path": str(base / "roi.npy"), "table": str(base / "roi.csv"),
                                  "encoder": "clip-vit-l-14"}},
        "art_feat": {"layout": "artphoto", "taxonomy": "open",
                     "features": {"path": str(base / "art.parquet"), "encoder": "clip-vit-l-14"}},
    })
    demo = data["profiles"]["demo"]
    data["profiles"] = {"featonly": {
        "held_in": ["e6_feat", "roi_feat"], "zero_shot": ["art_feat"], "encoder": "clip-vit-l-14",
        "backbone": "minilm", "extraction": {"shard_size": 40},
        "training": {"epochs": 6, "batch_size": 16, "max_lr": 0.003, "loss": "ntxent"},
        "evaluation": {"tsne": False},
        "generation": {**demo["generation"], "datasets": ["e6_feat"]},
    }}
    data["deployments"] = {}
    config = base / "flows.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return {"base": base, "config": config}


def test_three_sources_train_and_evaluate_without_images(sources, prefect_harness, monkeypatch) -> None:
    import tinyemo_core.stages.predict  # noqa: F401  (imported before the patch: it binds load_encoder)
    from pipelines.flows.evaluate import evaluate
    from tinyemo_core.config import load_config
    from tinyemo_core.data.feature_sources import name_id
    from tinyemo_core.stages import features, ingest
    from tinyemo_core.store.manifests import read_manifest, read_summary

    cfg = load_config(sources["config"], "featonly")
    assert all(s.features_only for s in cfg.datasets.values())
    monkeypatch.setattr(features, "load_encoder", lambda spec: pytest.fail("an image encoder was loaded"))
    result = evaluate(config=str(sources["config"]), profile="featonly")
    accuracy = {n: d["accuracy"] for n, d in result["summary"]["datasets"].items()}
    assert set(accuracy) == {"e6_feat", "roi_feat", "art_feat"}
    assert min(accuracy.values()) > 0.5, accuracy  # the imported vectors carry the classes

    plan = ingest.plan("e6_feat", cfg.datasets["e6_feat"], cfg.storage_root)
    man = read_manifest(plan.path)
    assert plan.complete and man.num_rows == 54  # 6 classes x 9; the 18 validation copies dropped
    assert set(man["split"].to_pylist()) == {"train", "test"}
    first = man.to_pylist()[0]
    assert first["path"] == "anger/0" and first["image_id"] == name_id("e6_feat", "anger/0")
    assert json.loads(first["attributes"]) == {"id_source": "name", "source": "images/test/anger/0.pt"}
    assert "validation/ is a copy of test/ (18 of 18 names" in read_summary(plan.path)["notes"][0]
    store = features.open_store(cfg.storage_root, "clip-vit-l-14", "e6_feat", features.encoder_fingerprint(
        cfg.encoder))
    imported = store.manifest()["imported"]
    assert imported["id_source"] == "name" and imported["validation_duplicates_test"]["copies"] == 18
    assert 0 < imported["validation_duplicates_test"]["max_abs_diff"] < 0.01
    roi = read_manifest(ingest.plan("roi_feat", cfg.datasets["roi_feat"], cfg.storage_root).path)
    assert roi["path"][0].as_py() == "anger/img_0" and roi.num_rows == 48
    # predict --features: vectors a user already has, no image, no encoder
    from typer.testing import CliRunner

    from pipelines.cli import app

    rng = np.random.default_rng(5)
    np.save(sources["base"] / "mine.npy", np.stack([_vector(w, rng) for w in EKMAN]))
    out = CliRunner().invoke(app, ["predict", "--features", str(sources["base"] / "mine.npy"), "--taxonomy",
                                   "ekman6", "--json", "--config", str(sources["config"]), "--profile",
                                   "featonly"])
    assert out.exit_code == 0, out.output
    preds = json.loads(out.output)["predictions"]
    assert [p["image"] for p in preds] == [f"mine.npy[{i}]" for i in range(6)]
    assert sum(p["labels"][0] == w for p, w in zip(preds, EKMAN, strict=True)) >= 4
    # the neuron atlas (ids and labels, no image grids), neuron ablation and re-grounding work on it
    from pipelines.flows.experiments import dataset_ablation, reground_labels
    from pipelines.flows.interpret import neuron_ablation, neuron_atlas

    atlas = neuron_atlas(config=str(sources["config"]), profile="featonly")
    assert atlas["rows"] > 0 and atlas["grids"] == [] and atlas["selective"]
    similar = CliRunner().invoke(app, ["explore", "similar", "joy", "--dataset", "e6_feat", "-k", "4",
                                       "--config", str(sources["config"]), "--profile", "featonly"])
    assert similar.exit_code == 0 and "grid:" not in similar.output, similar.output  # ids+labels, no grid
    ablation = neuron_ablation(config=str(sources["config"]), profile="featonly")
    assert ablation["baseline_accuracy"] > 0.5
    table3 = dataset_ablation(config=str(sources["config"]), profile="featonly",  # Table III grid, one row
                              datasets=["e6_feat"])
    assert Path(table3["markdown"]).exists()
    reground = reground_labels(config=str(sources["config"]), profile="featonly",
                               variants={"joy→cheerful": {"texts": {"joy": "cheerful and content"}}})
    assert Path(reground["markdown"]).exists()
    # a warm rerun imports and trains nothing
    before = {p: p.stat().st_mtime_ns for p in (cfg.storage_root / "features").rglob("*") if p.is_file()}
    again = evaluate(config=str(sources["config"]), profile="featonly")
    assert again["summary"]["datasets"] == result["summary"]["datasets"]
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_flows_that_need_pixels_refuse_in_one_line(sources, prefect_harness) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    out = CliRunner().invoke(app, ["run", "generate-qa", "--config", str(sources["config"]), "--profile",
                                   "featonly"])
    assert out.exit_code == 2
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1, out.output
    assert "generate-qa" in lines[0] and "needs the images of dataset 'e6_feat'" in lines[0]
    assert "Traceback" not in out.output
    other = CliRunner().invoke(app, ["run", "train-projector", "--config", str(sources["config"]),
                                     "--profile", "featonly", "--set", "encoder=demo-tiny-clip"])
    lines = [line for line in other.output.splitlines() if line.strip()]
    assert other.exit_code == 2 and len(lines) == 1, other.output
    assert "has features of encoder 'clip-vit-l-14' only" in lines[0]
    # through the CLI (its preflight included) the features-only profile runs: no image root, no encoder
    ok = CliRunner().invoke(app, ["run", "evaluate", "--config", str(sources["config"]), "--profile",
                                  "featonly"])
    assert ok.exit_code == 0, ok.output


def test_readme_import_features_example_runs_as_written(tmp_path: Path, prefect_harness) -> None:
    """`tinyemo import-features fi /cache/FI_features --encoder clip-vit-l-14` with the default (demo)
    profile: fi has no images here (/data/FI), so it becomes features-only; nothing else is ingested."""
    from conftest import write_small_config
    from typer.testing import CliRunner

    from pipelines.cli import app
    from tinyemo_core.config import load_config
    from tinyemo_core.stages import features

    config = write_small_config(tmp_path)
    cache = tmp_path / "cache" / "FI_features"
    authors_tree(cache, MIKELS, 4, np.random.default_rng(1))
    out = CliRunner().invoke(app, ["import-features", "fi", str(cache), "--encoder", "clip-vit-l-14",
                                   "--config", str(config)])
    assert out.exit_code == 0, out.output
    assert "validation/ is a copy of test/" in out.output and "features-only" in out.output
    storage = tmp_path / "storage"
    assert sorted(p.name for p in (storage / "manifests").iterdir()) == ["fi"]  # touched only fi
    assert not (storage / "demo_data").exists()
    recorded = yaml.safe_load((storage / "datasets.yaml").read_text())["datasets"]["fi"]
    assert recorded["features"]["encoder"] == "clip-vit-l-14"
    cfg = load_config(config, "demo", ["held_in=[fi]", "zero_shot=[]", "encoder=clip-vit-l-14"])
    assert cfg.datasets["fi"].features_only and cfg.datasets["fi"].root == Path("/data/FI")
    fp = features.encoder_fingerprint(cfg.encoder)
    store = features.open_store(cfg.storage_root, "clip-vit-l-14", "fi", fp)
    assert store.manifest()["rows"] == 8 * 4  # validation copies not imported twice
    again = CliRunner().invoke(app, ["import-features", "fi", str(cache), "--encoder", "clip-vit-l-14",
                                     "--config", str(config)])
    assert again.exit_code == 0, again.output
    bad = CliRunner().invoke(app, ["import-features", "fi", str(tmp_path / "nowhere"), "--config",
                                   str(config)])
    assert bad.exit_code == 2 and "no such feature source" in bad.output
