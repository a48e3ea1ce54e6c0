"""Optional patch tokens (the reasoning stage's input) go to their own store, beside the pooled features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyemo_core.config import load_config
from tinyemo_core.stages import features, ingest


def test_patch_tokens_are_stored_separately(small_config) -> None:
    cfg = load_config(small_config(), "demo", ["encoders.demo-tiny-clip.patch_tokens=true"])
    ingest.make_demo_data(cfg.storage_root, cfg.spec.demo_data)
    name, spec = "demo_emoroi", cfg.datasets["demo_emoroi"]
    desc = ingest.ingest(name, spec, cfg.storage_root, ingest.ingest_fingerprint(name, spec), progress=False)
    fp = features.encoder_fingerprint(cfg.encoder)
    pooled = features.open_store(cfg.storage_root, cfg.encoder_name, name, fp)
    patches = features.open_store(cfg.storage_root, cfg.encoder_name, name, fp, "patches")
    assert patches.root != pooled.root and patches.root.parent.name == "demo-tiny-clip.patches"
    plan = features.plan_shards(Path(desc["manifest"]), spec.root, patches, 16)[0]
    info = features.extract_shard(cfg.encoder, patches, plan, output="patches")
    # tiny config: 48 px images, 8 px patches -> 36 tokens of width 96 (CLS dropped)
    assert (info["tokens"], info["width"]) == (36, 96)
    features.commit_store(patches, [info], build_faiss=False)
    ids, flat = patches.load()
    assert flat.shape == (len(plan.image_ids), 36 * 96)
    pooled_info = features.extract_shard(cfg.encoder, pooled, plan)
    features.commit_store(pooled, [pooled_info])
    pooled_ids, pooled_vecs = pooled.load()
    assert pooled_ids == ids and pooled_vecs.shape == (len(ids), 64)
    assert not np.allclose(flat[:, :64].astype(np.float32), pooled_vecs.astype(np.float32))
    with pytest.raises(ValueError, match="unknown encoder output"):
        features.open_store(cfg.storage_root, cfg.encoder_name, name, fp, "logits")
