"""Feature extraction stage: manifest -> sharded feature store, only for images not stored yet."""

from __future__ import annotations

import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from tinyemo_core.data.images import load_rgb
from tinyemo_core.encoders.fingerprints import vision_fingerprint
from tinyemo_core.encoders.specs import VisionEncoderSpec
from tinyemo_core.fingerprint import stable_hash
from tinyemo_core.store.features import FeatureStore, ShardPlan, feature_store_root
from tinyemo_core.store.manifests import read_manifest
from tinyemo_core.store.plan import StorePlan

_LOCK = threading.Lock()


OUTPUTS = ("pooled", "patches")


def encoder_fingerprint(spec: VisionEncoderSpec) -> str:
    return vision_fingerprint(spec)


def open_store(
    storage_root: Path, encoder_name: str, dataset: str, fingerprint: str, output: str = "pooled"
) -> FeatureStore:
    if output not in OUTPUTS:
        raise ValueError(f"unknown encoder output {output!r}; choose one of {OUTPUTS}")
    fp = fingerprint if output == "pooled" else f"{fingerprint}:{output}"
    return FeatureStore(feature_store_root(storage_root, encoder_name, dataset, output), fp)


def plan(storage_root: Path, encoder_name: str, dataset: str, spec: VisionEncoderSpec,
         output: str = "pooled") -> StorePlan:
    """The store for (encoder, dataset, output): complete when its manifest is committed (images added to
    the dataset later are planned shard by shard, see :func:`plan_shards`)."""
    store = open_store(storage_root, encoder_name, dataset, encoder_fingerprint(spec), output)
    return StorePlan(store.encoder_fingerprint, store.root, store.manifest() is not None)


def plan_shards(manifest: Path, dataset_root: Path, store: FeatureStore, shard_size: int) -> list[ShardPlan]:
    """Shards covering the manifest's decodable images that the store does not hold yet."""
    table = read_manifest(manifest, ok_only=True)
    items = [
        (i, str(dataset_root / p))
        for i, p in zip(table["image_id"].to_pylist(), table["path"].to_pylist(), strict=True)
    ]
    return store.plan(items, shard_size)


@lru_cache(maxsize=2)
def _cached_encoder(spec_json: str):
    from tinyemo_core.encoders.vision import load_vision_encoder

    return load_vision_encoder(VisionEncoderSpec.model_validate_json(spec_json))


def load_encoder(spec: VisionEncoderSpec):
    """The encoder for ``spec``, loaded once per process (shards reuse it)."""
    with _LOCK:
        return _cached_encoder(spec.model_dump_json())


def extract_shard(
    spec: VisionEncoderSpec, store: FeatureStore, plan: ShardPlan, *, output: str = "pooled",
    progress: bool = False,
) -> dict[str, Any]:
    """Encode one shard's images and write it; a shard already on disk (from a killed run) is reused.

    ``output="patches"`` stores the patch tokens (hidden_states[-2], CLS dropped; the reasoning stage's input)
    flattened per image, in the separate patch store.
    """
    if store.shard_done(plan.name):
        return {**store.shard_info(plan.name), "computed": False, "seconds": 0.0}
    from tinyemo_core.encoders.extract import encode_images

    if output == "patches":
        spec = spec.model_copy(update={"patch_tokens": True})
    encoder = load_encoder(spec)
    start = time.perf_counter()
    result = encode_images(
        encoder,
        [Path(p) for p in plan.paths],
        batch_size=spec.batch_size,
        num_workers=spec.num_workers,
        progress=progress,
        load_image=load_rgb,
    )
    vectors = result.vectors
    if output == "patches":
        patches = result.patches if result.patches is not None else np.zeros((0, 0, 0), np.float32)
        vectors = patches.reshape(len(patches), -1)
    info = store.write_shard(
        plan.name, plan.image_ids, vectors, result.ok_index, result.errors, dtype=spec.store_dtype
    )
    if output == "patches" and len(result.ok_index):
        info["tokens"], info["width"] = int(result.patches.shape[1]), int(result.patches.shape[2])
    seconds = time.perf_counter() - start
    return {
        **info,
        "computed": True,
        "seconds": seconds,
        "images_per_s": len(plan.image_ids) / max(seconds, 1e-9),
    }


def commit_store(store: FeatureStore, new_shards: list[dict], *, build_faiss: bool = True) -> dict[str, Any]:
    """Build the FAISS index (cosine, over committed + new shards), then write ``_manifest.json`` last.

    The index type is chosen by size (exact below a threshold, IVF above) and the choice is recorded in the
    manifest; the manifest is still written last, so a kill before it leaves the store incomplete.
    """
    extra: dict[str, Any] = {}
    if build_faiss:
        from tinyemo_core.index.faiss_index import build_index, save_index

        names = store.shard_names(new_shards)
        ids, vectors = store.read_shards(names)
        if len(ids):
            vecs = np.asarray(vectors, dtype=np.float32)
            vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
            index, info = build_index(vecs, metric="ip")
            index_name = f"index-{stable_hash(names, length=16)}.faiss"
            save_index(index, store.root / index_name, tmp_dir=store.staging)
            extra["faiss"] = {"file": index_name, "rows": len(ids), "normalised": True, **info}
    return store.commit(new_shards, extra)
