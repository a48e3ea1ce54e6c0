"""The demo is hard enough that a regression shows: through the real stages (ingest, extraction with the
demo encoder, MiniLM labels, projector training, evaluation) every dataset lands clearly above chance and
clearly below 100 % (demo version 2; before it: 100 / 100 / 95 / 100)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyemo_core.config import load_config
from tinyemo_core.stages import evaluate as ev
from tinyemo_core.stages import features, ingest, labels, train

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_demo_accuracies_are_informative(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "flows.yaml", "demo", [f"storage_root={tmp_path}"])
    ingest.make_demo_data(cfg.storage_root, cfg.spec.demo_data)
    specs = {n: s.model_copy(update={"root": ingest.demo_data_root(cfg.storage_root) / n})
             for n, s in cfg.datasets.items()}
    manifests, stores = {}, {}
    fp = features.encoder_fingerprint(cfg.encoder)
    for n, s in specs.items():
        manifests[n] = ingest.ingest(n, s, cfg.storage_root, ingest.ingest_fingerprint(n, s), workers=2,
                                     progress=False)["manifest"]
        stores[n] = features.open_store(cfg.storage_root, cfg.encoder_name, n, fp)
        plans = features.plan_shards(Path(manifests[n]), s.root, stores[n], 128)
        features.commit_store(stores[n], [features.extract_shard(cfg.encoder, stores[n], p) for p in plans],
                              build_faiss=False)
    table = labels.embed_labels(cfg.backbone, cfg.backbone_name, labels.label_pairs(specs, manifests),
                                cfg.storage_root, labels.backbone_fingerprint(cfg.backbone))["table"]
    held = {n: specs[n] for n, r in cfg.roles.items() if r == "held_in"}
    train.train(held, manifests, stores, table, cfg.spec.training, tmp_path / "run", progress=False)
    out = ev.evaluate(tmp_path / "run", "best", specs, cfg.roles, manifests, stores, table,
                      tmp_path / "eval", tsne=False)
    for name, row in out["summary"]["datasets"].items():
        chance = 1 / len(set(labels.dataset_labels(Path(manifests[name]))))
        assert 2 * chance < row["accuracy"] < 0.95, (name, row["accuracy"])
