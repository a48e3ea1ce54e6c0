"""Word-demo stage: the word-derived demo dataset (``tinyemo_core.data.demo_words``) written into a flows.yaml
dataset's root, its classes' appearance fixed by their label embeddings in the profile's backbone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyemo_core.config import DatasetSpec
from tinyemo_core.data.demo_words import generate_word_demo, marker_params, word_demo_complete
from tinyemo_core.encoders.specs import BackboneSpec
from tinyemo_core.fingerprint import stable_hash
from tinyemo_core.projector.transfer_spec import WordDemoSpec
from tinyemo_core.store.labels import render
from tinyemo_core.store.plan import StorePlan


def _params(demo: WordDemoSpec, backbone_fp: str, template: str) -> dict[str, Any]:
    return marker_params(demo.words, seed=demo.seed, images_per_class=demo.images_per_class,
                         image_size=demo.image_size, dims=demo.dims, noise=demo.noise,
                         vectors_id=f"{backbone_fp}:{template}")


def plan(demo: WordDemoSpec, dataset: DatasetSpec, backbone_fp: str) -> StorePlan:
    """The dataset folder: complete when its marker records these words, settings and backbone."""
    params = _params(demo, backbone_fp, dataset.template)
    return StorePlan(stable_hash(params), dataset.root, word_demo_complete(dataset.root, params))


def read(plan: StorePlan) -> dict[str, Any] | None:
    """The generated dataset's descriptor when its marker is there, or None."""
    return {"root": str(plan.path), "computed": False} if plan.complete else None


def check(demo: WordDemoSpec, datasets: dict[str, DatasetSpec], where: str) -> None:
    """A clear error when ``demo.dataset`` is not an ``imagefolder`` dataset of the profile."""
    if demo.dataset not in datasets:
        raise ValueError(f"{where}.dataset: {demo.dataset!r} is not a dataset of this profile "
                         f"(its datasets: {', '.join(datasets)})")
    if datasets[demo.dataset].layout != "imagefolder":
        raise ValueError(f"{where}.dataset: {demo.dataset} must have layout imagefolder (the generator "
                         f"writes <root>/<word>/*.png), not {datasets[demo.dataset].layout}")


def make(demo: WordDemoSpec, dataset: DatasetSpec, backbone: BackboneSpec, backbone_name: str,
         backbone_fp: str, storage_root: Path) -> dict[str, Any]:
    """Embed the words (label store, cached) with the dataset's template and draw the images."""
    from tinyemo_core.stages.label_lookup import label_vectors

    texts = [render(dataset.template, w) for w in demo.words]
    lookup = label_vectors(backbone, backbone_name, storage_root, texts, backbone_fingerprint=backbone_fp)
    return generate_word_demo(Path(dataset.root), list(demo.words), lookup.stack(texts), seed=demo.seed,
                              images_per_class=demo.images_per_class, image_size=demo.image_size,
                              dims=demo.dims, noise=demo.noise,
                              vectors_id=_params(demo, backbone_fp, dataset.template)["vectors"])
