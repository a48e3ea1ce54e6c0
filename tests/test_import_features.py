"""import-features: the authors' `.pt` cache tree and a `.npy` + paths table become feature stores that
train-projector and evaluate use without extracting; pickles are never run. Also checks the evaluation
protocol: held-in datasets on their test split, zero-shot datasets on every image."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import data_fixtures as fx
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from tinyemo_core.config import DatasetSpec, load_config
from tinyemo_core.data.feature_sources import name_id
from tinyemo_core.projector.spec import TrainingSpec
from tinyemo_core.stages import evaluate as ev
from tinyemo_core.stages import features, ingest, labels, train
from tinyemo_core.stages.import_features import FeatureImportError, import_features, rekey_store
from tinyemo_core.store.manifests import read_manifest

ROOT = Path(__file__).resolve().parent.parent
ENCODER = "clip-vit-l-14"  # the declared identity of the imported features
DIM = 16


def _vector(label: str, rng: np.random.Generator) -> np.ndarray:
    centre = np.zeros(DIM, np.float32)
    centre[sum(map(ord, label)) % DIM] = 4.0
    return centre + rng.normal(0, 0.3, DIM).astype(np.float32)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """EmotionROI (held-in) with an authors'-style .pt tree, Emotion6 (zero-shot) with .npy + CSV."""
    base = tmp_path_factory.mktemp("import")
    fx.make_emotionroi(base / "roi", per_class=10)
    fx.make_emotion6(base / "e6", per_class=4)
    specs = {"roi": DatasetSpec(layout="emotionroi", root=base / "roi"),
             "e6": DatasetSpec(layout="emotion6", root=base / "e6", taxonomy="open")}
    storage = base / "storage"
    manifests = {n: ingest.ingest(n, s, storage, ingest.ingest_fingerprint(n, s), workers=1,
                                  progress=False)["manifest"] for n, s in specs.items()}
    rng = np.random.default_rng(0)
    cache = base / "cache_roi"
    for row in read_manifest(Path(manifests["roi"]), ok_only=True).to_pylist():
        cls, name = row["path"].split("/")[1:]
        out = cache / row["split"] / cls / (Path(name).stem + ".pt")
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torch.from_numpy(_vector(row["label"], rng)).half().unsqueeze(0), out)  # (1, d) fp16
    e6 = read_manifest(Path(manifests["e6"]), ok_only=True).to_pylist()
    np.save(base / "e6.npy", np.stack([_vector(r["label"], rng) for r in e6]))
    (base / "e6.csv").write_text("path\n" + "\n".join(r["path"] for r in e6) + "\n")
    cfg = load_config(ROOT / "flows.yaml", "demo")
    enc_fp = features.encoder_fingerprint(cfg.flows.encoders[ENCODER])
    return {"base": base, "specs": specs, "storage": storage, "manifests": manifests, "cache": cache,
            "enc_spec": cfg.flows.encoders[ENCODER], "enc_fp": enc_fp,
            "backbone": cfg.flows.backbones["minilm"]}


def _store(w, name: str, encoder: str = ENCODER):
    return features.open_store(w["storage"], encoder, name, w["enc_fp"])


def test_import_then_train_and_evaluate_without_extracting(world, tmp_path: Path, monkeypatch) -> None:
    w = world
    monkeypatch.setattr(features, "load_encoder", lambda spec: pytest.fail("an encoder was loaded"))
    roi = import_features("roi", w["cache"], _store(w, "roi"), encoder_name=ENCODER,
                          manifest=Path(w["manifests"]["roi"]))
    e6 = import_features("e6", w["base"] / "e6.npy", _store(w, "e6"), encoder_name=ENCODER,
                         manifest=Path(w["manifests"]["e6"]), table=w["base"] / "e6.csv")
    assert roi["computed"] and roi["imported"] == 20 and roi["missing"] == 0 and roi["unmatched"] == 0
    assert roi["id_source"] == "bytes" and roi["declared_encoder"] == ENCODER and roi["dim"] == DIM
    assert e6["imported"] == 12 and e6["format"] == "npy"
    again = import_features("roi", w["cache"], _store(w, "roi"), encoder_name=ENCODER,
                            manifest=Path(w["manifests"]["roi"]))
    assert not again["computed"]
    # the pipeline's own plan finds the stores complete: nothing to extract
    for name in ("roi", "e6"):
        assert features.plan(w["storage"], ENCODER, name, w["enc_spec"]).complete
        manifest = Path(w["manifests"][name])
        assert features.plan_shards(manifest, w["specs"][name].root, _store(w, name), 64) == []
        store_ids, _ = _store(w, name).load()
        assert sorted(store_ids) == sorted(read_manifest(Path(w["manifests"][name]), ok_only=True)["image_id"]
                                           .to_pylist())  # ids from the image bytes
    stores = {n: _store(w, n) for n in w["specs"]}
    pairs = labels.label_pairs(w["specs"], w["manifests"])
    table = labels.embed_labels(w["backbone"], "minilm", pairs, w["storage"],
                                labels.backbone_fingerprint(w["backbone"]))["table"]
    held = {"roi": w["specs"]["roi"]}
    spec = TrainingSpec(epochs=3, batch_size=8, max_lr=3e-3, pct_start=0.2)
    run = train.train(held, w["manifests"], stores, table, spec, tmp_path / "run", progress=False)
    assert run["computed"] and run["train_rows"] == 14  # EmotionROI's official training set, whole
    roles = {"roi": "held_in", "e6": "zero_shot"}
    out = ev.evaluate(tmp_path / "run", "best", w["specs"], roles, w["manifests"], stores, table,
                      tmp_path / "eval", tsne=False)
    ds = out["summary"]["datasets"]
    assert ds["roi"]["n"] == 6 and ds["roi"]["splits"] == ["test"]  # held-in: the official test split
    assert ds["e6"]["n"] == 12 and ds["e6"]["splits"] == ["train", "val", "test"]  # zero-shot: every image
    assert ds["roi"]["accuracy"] > 0.5
    scoped = {**w["specs"], "e6": w["specs"]["e6"].model_copy(update={"zero_shot_split": "test"})}
    out = ev.evaluate(tmp_path / "run", "best", scoped, roles, w["manifests"], stores, table,
                      tmp_path / "eval-test", tsne=False)
    assert out["summary"]["datasets"]["e6"]["n"] == sum(
        s == "test" for s in read_manifest(Path(w["manifests"]["e6"]), ok_only=True)["split"].to_pylist())


def test_missing_files_are_reported_and_left_to_extraction(world, tmp_path: Path) -> None:
    w = world
    partial = tmp_path / "cache"
    for f in sorted(w["cache"].rglob("*.pt"))[1:]:
        (partial / f.relative_to(w["cache"])).parent.mkdir(parents=True, exist_ok=True)
        (partial / f.relative_to(w["cache"])).write_bytes(f.read_bytes())
    (partial / "train" / "anger" / "stray.pt").write_bytes((partial / "test" / "joy" / "9.pt").read_bytes())
    store = _store(w, "roi", "imported-partial")
    out = import_features("roi", partial, store, encoder_name=ENCODER, manifest=Path(w["manifests"]["roi"]))
    assert (out["imported"], out["missing"], out["unmatched"]) == (19, 1, 1)
    assert out["unmatched_examples"] == ["train/anger/stray.pt"]
    todo = features.plan_shards(Path(w["manifests"]["roi"]), w["specs"]["roi"].root, store, 64)
    assert [p.image_ids for p in todo] == [tuple(out["missing_examples"])]  # extraction fills in just that


def test_without_images_ids_come_from_names_then_rekey(world, tmp_path: Path) -> None:
    """No images: ids from the source's names; when the images arrive the store is re-keyed to the
    image-content ids with the very same vectors (nothing recomputed)."""
    w = world
    store = _store(w, "roi", "names-first")
    out = import_features("roi", w["cache"], store, encoder_name=ENCODER,
                          out_manifest=tmp_path / "roi-noimg.parquet")
    assert out["id_source"] == "name" and out["imported"] == 20
    man = read_manifest(tmp_path / "roi-noimg.parquet")
    assert set(man["split"].to_pylist()) == {"train", "test"}
    assert set(man["label"].to_pylist()) == {"anger", "joy"}
    first = man.to_pylist()[0]
    assert first["path"].startswith("anger/") and first["image_id"] == name_id("roi", first["path"])
    assert json.loads(first["attributes"]) == {"id_source": "name", "source": f"test/{first['path']}.pt"}
    assert store.manifest()["imported"]["id_source"] == "name"
    ids, vecs = store.load([name_id("roi", n) for n in man["path"].to_pylist()])
    before = dict(zip(man["path"].to_pylist(), vecs, strict=True))
    res = rekey_store("roi", store, Path(w["manifests"]["roi"]))
    assert res["mapped"] == 20 and res["unmatched"] == 0 and res["missing"] == 0
    image_rows = read_manifest(Path(w["manifests"]["roi"]), ok_only=True)
    new_ids, new_vecs = store.load(image_rows["image_id"].to_pylist())
    for path, vec in zip(image_rows["path"].to_pylist(), new_vecs, strict=True):
        cls, stem = Path(path).parent.name, Path(path).stem
        np.testing.assert_array_equal(vec, before[f"{cls}/{stem}"])
    assert features.plan_shards(Path(w["manifests"]["roi"]), w["specs"]["roi"].root, store, 64) == []
    mapping = pq.read_table(res["name_map"]).to_pylist()
    assert {m["name_id"] for m in mapping} == set(ids) and all(m["image_id"] for m in mapping)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickles_are_never_run_and_non_tensors_refused(world, tmp_path: Path) -> None:
    w = world
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil" / "train" / "anger"
    evil.mkdir(parents=True)
    with open(evil / "0.pt", "wb") as fh:
        pickle.dump(_Evil(marker), fh)
    with pytest.raises(FeatureImportError, match=r"0\.pt: refused, not a plain tensor file"):
        import_features("roi", tmp_path / "evil", _store(w, "roi", "x"), encoder_name=ENCODER,
                        manifest=Path(w["manifests"]["roi"]))
    assert not marker.exists()
    torch.save({"features": torch.zeros(DIM)}, evil / "0.pt")
    with pytest.raises(FeatureImportError, match=r"0\.pt: holds a dict, not a tensor"):
        import_features("roi", tmp_path / "evil", _store(w, "roi", "x"), encoder_name=ENCODER,
                        manifest=Path(w["manifests"]["roi"]))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "obj.csv").write_text("path\nimages/anger/0.jpg\n")
    with pytest.raises(FeatureImportError, match=r"obj\.npy: refused"):
        import_features("roi", tmp_path / "obj.npy", _store(w, "roi", "x"), encoder_name=ENCODER,
                        manifest=Path(w["manifests"]["roi"]), table=tmp_path / "obj.csv")
    assert _store(w, "roi", "x").manifest() is None  # nothing committed


def test_a_changed_source_is_not_mixed_into_an_existing_store(world, tmp_path: Path) -> None:
    import shutil

    w = world
    cache = tmp_path / "cache"
    shutil.copytree(w["cache"], cache)
    import_features("roi", cache, _store(w, "roi", "twice"), encoder_name=ENCODER,
                    manifest=Path(w["manifests"]["roi"]))
    (cache / "train" / "anger" / "0.pt").write_bytes((cache / "train" / "anger" / "1.pt").read_bytes())
    with pytest.raises(FeatureImportError, match="already holds another import"):
        import_features("roi", cache, _store(w, "roi", "twice"), encoder_name=ENCODER,
                        manifest=Path(w["manifests"]["roi"]))
