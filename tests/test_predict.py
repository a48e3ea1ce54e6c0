"""``tinyemo predict`` on a trained demo run: real images, encoder, projector and label store."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from tests.conftest import write_small_config

pytestmark = pytest.mark.slow

OVERRIDES = ['held_in=["demo_emoroi", "demo_emoset"]', "training.epochs=6"]


@pytest.fixture(scope="module")
def built(tmp_path_factory, prefect_harness) -> dict:
    from pipelines.flows.build_dataset import build_dataset

    config = write_small_config(tmp_path_factory.mktemp("predict"))
    return {"config": config, **build_dataset(config=str(config), profile="demo", overrides=OVERRIDES)}


def _test_images(built: dict, dataset: str) -> list[tuple[Path, str]]:
    from tinyemo_core.config import load_config
    from tinyemo_core.store.manifests import read_manifest

    cfg = load_config(built["config"], "demo", OVERRIDES)
    t = read_manifest(Path(built["manifests"][dataset]))
    t = t.filter(pc.and_(pc.equal(t["split"], "test"), pc.equal(t["status"], "ok")))
    root = cfg.datasets[dataset].root
    return [(root / p, lab) for p, lab in zip(t["path"].to_pylist(), t["label"].to_pylist(), strict=True)]


def test_predict_ranks_true_label_first(built: dict) -> None:
    from tinyemo_core.config import load_config
    from tinyemo_core.stages import predict as core

    cfg = load_config(built["config"], "demo", OVERRIDES)
    run_dir = core.resolve_run("latest", cfg.storage_root)
    assert run_dir == Path(built["run_dir"]).resolve()
    reported = {
        r["sample_id"]: r["predicted"]
        for r in pq.read_table(Path(built["report_dir"]) / "predictions.parquet").to_pylist()
    }
    for dataset in ("demo_emoroi", "demo_emoset"):
        items = _test_images(built, dataset)
        pairs = core.label_set(cfg, taxonomy=dataset)
        preds, info = core.predict([p for p, _ in items], run_dir, cfg, pairs)
        assert info["labels_embedded"] == 0  # every label text was in the store
        top1 = [p.labels[0] for p in preds]
        accuracy = sum(t == lab for t, (_, lab) in zip(top1, items, strict=True)) / len(items)
        assert accuracy > 2 / len(pairs), dataset  # well above chance (the demo is made hard on purpose)
        for p in preds:
            assert sorted(p.labels) == sorted(w for w, _ in pairs)
            assert p.scores == sorted(p.scores, reverse=True)
        # the same decision as the evaluation stage made from the stored (fp16) features
        from tinyemo_core.data.images import image_id_of

        agree = [reported[image_id_of(p.read_bytes())] == t for (p, _), t in zip(items, top1, strict=True)]
        assert sum(agree) >= 0.9 * len(agree)


def _cli() -> typer.Typer:
    from pipelines.cli.predict import register

    app = typer.Typer()
    register(app)
    return app


def test_predict_cli_json_and_label_cache(built: dict, tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    items = _test_images(built, "demo_emoroi")[:4]
    for i, (p, _) in enumerate(items):
        (folder / f"{i}{p.suffix}").write_bytes(p.read_bytes())
    base = ["predict", str(folder), "--run", Path(built["run_dir"]).name, "--config", str(built["config"]),
            "--labels", "joy, sadness, a quiet cheerful morning", *sum((["--set", o] for o in OVERRIDES), [])]
    args = [*base, "--json", "--top", "0"]
    first = CliRunner().invoke(_cli(), args)
    assert first.exit_code == 0, first.output
    data = json.loads(first.output)
    assert [Path(p["image"]).name for p in data["predictions"]] == sorted(f.name for f in folder.iterdir())
    assert all(sorted(p["labels"]) == ["a quiet cheerful morning", "joy", "sadness"]
               for p in data["predictions"])
    assert data["labels_embedded"] == 1 and data["backbone"] == "minilm"
    second = json.loads(CliRunner().invoke(_cli(), args).output)
    assert second["labels_embedded"] == 0 and second["predictions"] == data["predictions"]

    table = CliRunner().invoke(_cli(), [*base, "--top", "2"])
    assert table.exit_code == 0 and "cosine" in table.output and "rank" in table.output


def test_predict_cli_errors(built: dict, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    good = _test_images(built, "demo_emoset")[0][0]
    base = ["--config", str(built["config"]), "--taxonomy", "mikels8"]
    out = CliRunner().invoke(_cli(), ["predict", str(good), str(bad), *base, "--json"])
    assert out.exit_code == 1  # one image failed: reported in the output, and the exit status says so
    preds = json.loads(out.output)["predictions"]
    assert preds[0]["error"] is None and len(preds[0]["labels"]) == 5 and preds[1]["error"]
    missing = CliRunner().invoke(_cli(), ["predict", str(good), "--run", "no-such-run", *base])
    assert missing.exit_code == 2 and "no-such-run" in missing.output
    unknown = CliRunner().invoke(_cli(), ["predict", str(good), *base[:2], "--taxonomy", "nope"])
    assert unknown.exit_code == 2 and "unknown taxonomy" in unknown.output


def test_run_trained_with_unknown_encoder_is_rejected(built: dict, tmp_path: Path) -> None:
    from tinyemo_core.config import load_config
    from tinyemo_core.stages import predict as core

    run = tmp_path / "other-encoder__minilm__0123456789ab"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"done": True}))
    cfg = load_config(built["config"], "demo", OVERRIDES)
    with pytest.raises(ValueError, match="encoder 'other-encoder'"):
        core.config_for_run(cfg, core.resolve_run(str(run), cfg.storage_root))
