"""Patch tokens from the feature store instead of the live ViT (docs/reasoning.md, "Cached patch tokens").

The patch store (``features/<encoder>.patches/<dataset>/``, written by the features stage with
``output="patches"``) holds ``hidden_states[-2]`` without CLS, flattened per image: exactly what LLaVA's
``get_image_features`` selects, so with the same tower weights the logits match (tested, fp32). Vectors are
read only through :class:`~tinyemo_core.store.features.FeatureStore` (``load``), never from shard files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from tinyemo_core.fingerprint import stable_hash
from tinyemo_core.store.features import FeatureStore
from tinyemo_core.store.manifests import read_manifest


class PatchLookup:
    """Export image path (relative to the image root) -> patch tokens ``(tokens, width)`` as float32."""

    def __init__(self, vectors: np.ndarray, rows: dict[str, int], width: int, identity: str) -> None:
        self.vectors, self.rows, self.width, self.identity = vectors, rows, width, identity

    def __contains__(self, rel: str) -> bool:
        return rel in self.rows

    def __call__(self, rel: str) -> np.ndarray:
        if rel not in self.rows:
            raise KeyError(
                f"image {rel!r} has no patch tokens in the store; extract patches for its dataset "
                "or set reasoning.cached_patches: off"
            )
        return np.asarray(self.vectors[self.rows[rel]], dtype=np.float32).reshape(-1, self.width)

    @classmethod
    def from_stores(
        cls,
        sources: Sequence[tuple[FeatureStore, Path, Path]],
        image_root: Path,
        width: int,
        needed: Iterable[str],
        *,
        memmap_dir: Path | None = None,
    ) -> PatchLookup:
        """``sources``: (patch store, manifest, dataset root) per dataset. Only the ``needed`` images are
        read (``FeatureStore.load``; into an ``np.memmap`` under ``memmap_dir`` when given)."""
        needed, image_root = set(needed), Path(image_root)
        blocks, rows, ident = [], {}, []
        for store, manifest, root in sources:
            if store.manifest() is None:
                raise FileNotFoundError(f"patch store {store.root} is incomplete; run extract with patches")
            table = read_manifest(manifest, ok_only=True)
            want = []
            for iid, p in zip(table["image_id"].to_pylist(), table["path"].to_pylist(), strict=True):
                rel = Path(os.path.relpath(Path(root) / p, image_root)).as_posix()
                if rel in needed and rel not in rows:
                    rows[rel] = sum(len(b) for b in blocks) + len(want)
                    want.append(iid)
            if want:
                mm = Path(memmap_dir) / f"{stable_hash(store.root, want)}.npy" if memmap_dir else None
                blocks.append(store.load(want, memmap_to=mm)[1])
            ident.append((store.encoder_fingerprint, (store.manifest() or {}).get("shards")))
        vectors = blocks[0] if len(blocks) == 1 else (np.concatenate(blocks) if blocks else np.zeros((0, 0)))
        return cls(vectors, rows, width, stable_hash(ident, sorted(rows)))


def sources_identity(sources: Sequence[tuple[FeatureStore, Path, Path]]) -> list:
    """Cheap identity of the patch stores (encoder fingerprint + committed shards), for fingerprints."""
    return [
        (
            s.encoder_fingerprint,
            [
                (x.get("name"), x.get("content_hash", x.get("rows")))
                for x in (s.manifest() or {}).get("shards", [])
            ],
        )
        for s, _, _ in sources
    ]


def patch_sources_complete(stores: Sequence[FeatureStore]) -> bool:
    """True when every patch store is committed (``cached_patches: auto`` turns on)."""
    return bool(stores) and all(s.manifest() is not None for s in stores)
