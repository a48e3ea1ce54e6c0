"""The evaluate-generated stage end to end with a real tiny VLM (transformers in process, batched)."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tinyemo_core.config import DatasetSpec
from tinyemo_core.encoders.specs import VisionEncoderSpec
from tinyemo_core.generate.backends.transformers_local import TransformersGenerator
from tinyemo_core.generate.tiny_model import build_tiny_vlm
from tinyemo_core.judge.spec import ClipScoreSpec, EvaluateGeneratedSpec
from tinyemo_core.stages import features as F
from tinyemo_core.stages.evaluate_generated import evaluate_generated, plan
from tinyemo_core.store.evaluations import evaluation_complete

LABELS = ["anger", "fear", "joy"]


class Counting(TransformersGenerator):
    """The real backend; counts answered requests and can fail after ``fail_after`` of them."""

    def __init__(self, *a, fail_after=None, **kw):
        super().__init__(*a, **kw)
        self.answered, self.fail_after = 0, fail_after

    def generate_batch_sync(self, requests):
        if self.fail_after is not None and self.answered >= self.fail_after:
            raise RuntimeError("simulated crash")
        out = super().generate_batch_sync(requests)
        self.answered += len(out)
        return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("eg")
    model = build_tiny_vlm(root / "vlm")
    data = root / "ds"
    rows = []
    for i in range(6):
        (data / LABELS[i % 3]).mkdir(parents=True, exist_ok=True)
        rel = f"{LABELS[i % 3]}/{i}.png"
        arr = (np.random.RandomState(i).rand(40, 40, 3) * 255).astype("uint8")
        Image.fromarray(arr).save(data / rel)
        rows.append(
            {
                "image_id": f"img{i}",
                "path": rel,
                "split": "test",
                "label": LABELS[i % 3],
                "dataset": "toy",
                "status": "ok",
            }
        )
    manifest = root / "manifests" / "toy" / "abc123.parquet"
    manifest.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), manifest)
    ds = {"toy": DatasetSpec(layout="imagefolder", root=data)}
    return root, model, ds, {"toy": str(manifest)}


def _spec(model, **kw):
    return EvaluateGeneratedSpec(
        recipe="emovit", model=str(model), max_tokens=6, batch_size=4, max_concurrency=4, device="cpu", **kw
    )


def test_interrupted_evaluation_resumes_without_reasking(world, tmp_path):
    root, model, ds, manifests = world
    spec = _spec(model, instructions=["Options: {options}. Predict emotion:", "Pick one of {options}."])
    total = 2 * 6
    crashing = Counting(model, device="cpu", max_batch_size=4, fail_after=4)
    with pytest.raises(RuntimeError, match="simulated crash"):
        evaluate_generated(spec, ds, {"toy": "held_in"}, manifests, tmp_path, generator=crashing)
    assert 0 < crashing.answered < total
    resumed = Counting(model, device="cpu", max_batch_size=4)
    events = []
    out = evaluate_generated(
        spec, ds, {"toy": "held_in"}, manifests, tmp_path, generator=resumed, on_progress=events.append
    )
    assert resumed.answered == total - crashing.answered  # nothing answered before is asked again
    assert out["computed"] and evaluation_complete(out["report_dir"]) and events[-1]["done"] == total
    gen = out["generation"][0]
    assert gen["cached"] == crashing.answered and gen["sent"] == total - crashing.answered
    d = out["summary"]["datasets"]["toy"]
    assert d["n"] == 6 and d["n_ok"] + d["n_several"] + d["n_none"] + d["n_failed"] == 6
    assert "sensitivity" in out["summary"] and out["summary"]["means"]["held_in_mean"] == d["accuracy"]
    # answers live in the shared per-request cache under storage/answers/<model>-<fp8>/<dataset>/
    assert list((tmp_path / "answers").glob("*/toy/part-*.jsonl"))
    table = pq.read_table(f"{out['report_dir']}/answers.parquet")
    assert table.num_rows == total
    report = json.loads(open(f"{out['report_dir']}/report.json").read())
    assert report["table_rows"][0]["dataset"] == "toy"
    assert (tmp_path / out["report_dir"]).joinpath("confusion_toy.png").exists()
    # complete: a rerun reads the report, asks nothing
    again = Counting(model, device="cpu", max_batch_size=4)
    assert not evaluate_generated(spec, ds, {"toy": "held_in"}, manifests, tmp_path, generator=again)[
        "computed"
    ]
    assert again.answered == 0
    # the plan (no model loaded) names the same report folder and knows it is complete
    planned = plan(spec, manifests, {"toy": "held_in"}, tmp_path)
    assert planned.complete and str(planned.path) == out["report_dir"]


def test_clipscore_store_features_equal_recomputed(world, tmp_path):
    root, model, ds, manifests = world
    enc = VisionEncoderSpec(
        model="tinyemo-tiny-clip",
        config_file="builtin:tinyemo-tiny-clip.json",
        store_dtype="float32",
        device="cpu",
    )
    store = F.open_store(tmp_path, "demo-tiny-clip", "toy", F.encoder_fingerprint(enc))
    shards = [
        F.extract_shard(enc, store, p) for p in F.plan_shards(manifests["toy"], ds["toy"].root, store, 64)
    ]
    F.commit_store(store, shards, build_faiss=False)
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps({f"img{i}": [f"a picture that feels like {LABELS[i % 3]}"] for i in range(6)}))
    spec = _spec(model, clipscore=ClipScoreSpec(max_tokens=8, references=refs))
    gen = Counting(model, device="cpu", max_batch_size=4)
    a = evaluate_generated(
        spec,
        ds,
        {"toy": "zero_shot"},
        manifests,
        tmp_path,
        encoder=enc,
        feature_stores={"toy": store},
        generator=gen,
    )
    b = evaluate_generated(
        spec,
        ds,
        {"toy": "zero_shot"},
        manifests,
        tmp_path / "other",
        encoder=enc,
        feature_stores={},
        generator=gen,
    )
    ca, cb = a["summary"]["clipscore"], b["summary"]["clipscore"]
    assert ca["image_features"].startswith("feature store") and cb["image_features"].startswith("recomputed")
    assert ca["truncation_tokens"] == 16 and "tinyemo-tiny-clip" in ca["clip_model"]
    da, db = ca["datasets"]["toy"], cb["datasets"]["toy"]
    assert da["n"] == 6 and da["clip_score"] == pytest.approx(db["clip_score"], abs=1e-5)
    assert da["ref_clip_score"] == pytest.approx(db["ref_clip_score"], abs=1e-5)
    assert 0 <= da["clip_score"] <= 2.5


def test_llava_emotic_is_scored_per_person(world, tmp_path):
    """llava-emotic: one prompt per annotated person (its red-box image), mAP over the 26 categories."""
    import data_fixtures as fx

    from tinyemo_core.stages import ingest

    _root, model, _ds, _m = world
    fx.make_emotic(tmp_path / "EMOTIC")
    spec_ds = DatasetSpec(layout="emotic", root=tmp_path / "EMOTIC")
    manifest = ingest.ingest("emo", spec_ds, tmp_path, ingest.ingest_fingerprint("emo", spec_ds), workers=1,
                             progress=False)["manifest"]
    spec = EvaluateGeneratedSpec(recipe="llava-emotic", model=str(model), max_tokens=8, batch_size=2,
                                 device="cpu", likelihood_map=False)
    out = evaluate_generated(spec, {"emo": spec_ds}, {"emo": "held_in"}, {"emo": manifest}, tmp_path)
    table = pq.read_table(f"{out['report_dir']}/answers.parquet").to_pylist()
    assert len(table) == 1 and table[0]["sample_id"].endswith("-p0")  # the test split's one person
    assert "mAP_generated" in out["summary"]["datasets"]["emo"]
