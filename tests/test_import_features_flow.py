"""tinyemo import-features through Prefect: an authors'-style .pt cache for every demo dataset becomes the
feature stores, then train-projector and evaluate run without loading an image encoder or touching a store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow
DIM = 24


def _pt_tree(manifest: Path, out: Path, rng: np.random.Generator) -> None:
    from tinyemo_core.store.manifests import read_manifest

    for row in read_manifest(manifest, ok_only=True).to_pylist():
        centre = np.zeros(DIM, np.float32)
        centre[sum(map(ord, row["label"])) % DIM] = 3.0
        rel = Path(row["path"])
        target = out / row["split"] / rel.parent.name / (rel.stem + ".pt")
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torch.from_numpy(centre + rng.normal(0, 0.5, DIM).astype(np.float32)), target)


def test_import_then_train_and_evaluate_extract_nothing(tmp_path: Path, prefect_harness, monkeypatch) -> None:
    from conftest import write_small_config
    from typer.testing import CliRunner

    from pipelines.cli import app
    from pipelines.flows.evaluate import evaluate
    from tinyemo_core.config import load_config
    from tinyemo_core.stages import features, ingest

    config = write_small_config(tmp_path)
    cfg = load_config(config, "demo")
    ingest.make_demo_data(cfg.storage_root, cfg.spec.demo_data)
    rng = np.random.default_rng(0)
    for name, spec in cfg.datasets.items():
        plan = ingest.plan(name, spec, cfg.storage_root)
        desc = ingest.ingest(name, spec, cfg.storage_root, plan.fingerprint, workers=1, progress=False)
        _pt_tree(Path(desc["manifest"]), tmp_path / "cache" / name, rng)
    runner = CliRunner()
    for name in cfg.datasets:
        out = runner.invoke(app, ["import-features", name, str(tmp_path / "cache" / name), "--config",
                                  str(config)])
        assert out.exit_code == 0, out.output
    stores = {n: features.plan(cfg.storage_root, cfg.encoder_name, n, cfg.encoder) for n in cfg.datasets}
    assert all(p.complete for p in stores.values())
    before = {str(p): p.stat().st_mtime_ns for p in (cfg.storage_root / "features").rglob("*") if p.is_file()}

    monkeypatch.setattr(features, "load_encoder", lambda spec: pytest.fail("an image encoder was loaded"))
    result = evaluate(config=str(config), profile="demo")
    accuracies = {n: d["accuracy"] for n, d in result["summary"]["datasets"].items()}
    assert set(accuracies) == set(cfg.datasets)
    held_in = [n for n, r in cfg.roles.items() if r == "held_in"]
    assert min(accuracies[n] for n in held_in) > 0.5  # the imported vectors carry the classes
    after = {str(p): p.stat().st_mtime_ns for p in (cfg.storage_root / "features").rglob("*") if p.is_file()}
    assert {k: after[k] for k in before} == before  # no store rewritten
    # a second import of the same cache is a no-op; a bad source is a clear error, exit 2
    again = runner.invoke(app, ["import-features", "demo_emoroi", str(tmp_path / "cache" / "demo_emoroi"),
                                "--config", str(config)])
    assert again.exit_code == 0 and "demo_emoroi" in again.output
    bad = runner.invoke(app, ["import-features", "demo_emoroi", str(tmp_path / "nowhere"), "--config",
                              str(config)])
    assert bad.exit_code == 2 and "no such feature source" in bad.output
