"""Predict emotions for new images with a trained run: encode, project, rank any label set by cosine.

The ranked list with cosine scores is the paper's "rank of emotions" (TinyEmo Fig. 2). Label vectors come
from the label store where cached; only unseen label texts are embedded with the run's backbone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyemo_core.config import RunConfig, load_config
from tinyemo_core.data.images import IMAGE_EXTENSIONS, load_rgb
from tinyemo_core.data.taxonomy import TAXONOMIES, get_taxonomy
from tinyemo_core.projector.calibration import stack
from tinyemo_core.stages.features import load_encoder
from tinyemo_core.stages.ingest import ingest_fingerprint
from tinyemo_core.stages.labels import dataset_labels
from tinyemo_core.store.labels import render
from tinyemo_core.store.manifests import manifest_complete, manifest_path
from tinyemo_core.store.runs import parse_run_name, resolve_run  # noqa: F401  (resolve_run: re-export)


@dataclass
class Prediction:
    """One image's ranked labels (best first) with their cosine scores, or the reason it was skipped."""

    image: str
    labels: list[str]
    scores: list[float]
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_models(run_dir: Path) -> tuple[str, str]:
    """(encoder name, backbone name) of a run folder (named ``<encoder>__<backbone>__<fingerprint>``)."""
    name = parse_run_name(run_dir)
    return name.encoder, name.backbone


def config_for_run(cfg: RunConfig, run_dir: Path, overrides: Sequence[str] = ()) -> RunConfig:
    """``cfg`` re-resolved with the run's encoder and backbone (named in the run folder) if they differ."""
    encoder, backbone = run_models(run_dir)
    for what, name, known in (("encoder", encoder, cfg.flows.encoders), ("backbone", backbone,
                                                                          cfg.flows.backbones)):
        if name not in known:
            raise ValueError(f"run {run_dir.name} was trained with {what} {name!r}, which "
                             f"{cfg.config_path} does not define; add it under {what}s: or pass --config")
    if (encoder, backbone) == (cfg.encoder_name, cfg.backbone_name):
        return cfg
    pick = [f"encoder={encoder}", f"backbone={backbone}"]
    return load_config(cfg.config_path, cfg.profile, [*overrides, *pick])


def image_paths(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders expanded recursively to their image files (sorted)."""
    out: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            out += sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        elif item.is_file():
            out.append(item)
        else:
            raise FileNotFoundError(f"{item} is neither an image file nor a folder")
    if not out:
        raise FileNotFoundError(f"no image files found in {', '.join(map(str, inputs))}")
    return out


def label_set(cfg: RunConfig, labels: str | None = None, taxonomy: str | None = None,
              template: str | None = None) -> list[tuple[str, str]]:
    """(word, text) pairs to rank: ``labels`` (comma-separated), a registered taxonomy, or a dataset of the
    profile (its own labels and template); default: the labels of the profile's held-in datasets."""
    if labels and taxonomy:
        raise ValueError("pass either --labels or --taxonomy, not both")
    if labels:
        words = [w.strip() for w in labels.split(",") if w.strip()]
        if not words:
            raise ValueError("--labels is empty; e.g. --labels 'joy,sadness,anger'")
        return [(w, render(template or "{label}", w)) for w in dict.fromkeys(words)]
    if taxonomy and taxonomy not in cfg.datasets:
        if taxonomy not in TAXONOMIES:
            raise ValueError(f"unknown taxonomy {taxonomy!r}; known taxonomies: {', '.join(TAXONOMIES)}; "
                             f"or a dataset of profile {cfg.profile}: {', '.join(cfg.datasets)}")
        words = list(get_taxonomy(taxonomy).labels)
        if not words:
            raise ValueError(f"taxonomy {taxonomy!r} has no fixed label set; pass --labels")
        return [(w, render(template or "{label}", w)) for w in words]
    names = [taxonomy] if taxonomy else [n for n, r in cfg.roles.items() if r == "held_in"]
    pairs: dict[str, str] = {}
    for name in names:
        for word in _dataset_words(cfg, name):
            pairs.setdefault(word, render(template or cfg.datasets[name].template, word))
    return list(pairs.items())


def _dataset_words(cfg: RunConfig, name: str) -> list[str]:
    path = manifest_path(cfg.storage_root, name, ingest_fingerprint(name, cfg.datasets[name]))
    if not manifest_complete(path):
        raise FileNotFoundError(f"dataset {name} has no manifest yet (run `tinyemo run build-dataset`), "
                                "or pass --labels / --taxonomy")
    return dataset_labels(path)


def predict(
    paths: Sequence[Path],
    run_dir: Path,
    cfg: RunConfig,
    pairs: Sequence[tuple[str, str]],
    *,
    which: str = "best",
    batch_size: int | None = None,
    calibrated: bool = False,
) -> tuple[list[Prediction], dict[str, Any]]:
    """Rank ``pairs`` (word, text) for every image; ``cfg`` must carry the run's encoder and backbone
    (see :func:`config_for_run`). Undecodable images get ``error`` instead of stopping the batch.

    ``info["untrained"]`` lists the words whose text the run never trained on (None when the run predates
    that record). ``calibrated``: apply the run's calibration (calibrated stacking: its margin is subtracted
    from the scores of the words it trained on, docs/projector.md); the scores shown are then calibrated."""
    from tinyemo_core.encoders.extract import encode_images

    scorer = _Scorer(run_dir, cfg, pairs, which, calibrated)
    encoder = load_encoder(cfg.encoder)
    if encoder.dim != scorer.model.in_dim:
        raise ValueError(f"encoder {cfg.encoder_name} gives {encoder.dim}-d features but run {run_dir.name} "
                         f"expects {scorer.model.in_dim}; use the encoder the run was trained on")
    result = encode_images(encoder, list(paths), batch_size=batch_size or cfg.encoder.batch_size,
                           num_workers=0, progress=False, load_image=load_rgb)
    out: list[Prediction] = [Prediction(str(p), [], [], result.errors.get(i)) for i, p in enumerate(paths)]
    for row, pred in zip(result.ok_index.tolist(), scorer.rank([str(paths[i]) for i in result.ok_index],
                                                               result.vectors), strict=True):
        out[row] = pred
    return out, scorer.info


def predict_features(names: Sequence[str], vectors: np.ndarray, run_dir: Path, cfg: RunConfig,
                     pairs: Sequence[tuple[str, str]], *, which: str = "best", calibrated: bool = False
                     ) -> tuple[list[Prediction], dict[str, Any]]:
    """Rank ``pairs`` for feature vectors a user already has (``tinyemo predict --features``): no image
    and no encoder, the vectors must come from the run's encoder (same width; the caller's word for it)."""
    scorer = _Scorer(run_dir, cfg, pairs, which, calibrated)
    vectors = np.asarray(vectors, np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != scorer.model.in_dim:
        raise ValueError(f"the features are {vectors.shape[-1] if vectors.ndim else 0}-d but run "
                         f"{run_dir.name} expects {scorer.model.in_dim}-d features of {cfg.encoder_name}")
    return scorer.rank(list(names), vectors), {**scorer.info, "features": len(names)}


class _Scorer:
    """A run's projector and the label vectors of ``pairs`` (normalised), checked against each other."""

    def __init__(self, run_dir: Path, cfg: RunConfig, pairs: Sequence[tuple[str, str]], which: str,
                 calibrated: bool) -> None:
        from tinyemo_core.projector.io import load_projector
        from tinyemo_core.stages.label_lookup import label_vectors

        self.trained, untrained, self.calibration = trained_status(run_dir, pairs, calibrated)
        self.model = load_projector(run_dir, which=which)  # type: ignore[arg-type]
        lookup = label_vectors(cfg.backbone, cfg.backbone_name, cfg.storage_root, [t for _, t in pairs])
        vectors = lookup.stack([t for _, t in pairs])
        if vectors.shape[1] != self.model.out_dim:
            raise ValueError(f"backbone {cfg.backbone_name} embeds labels in {vectors.shape[1]} dims but run "
                             f"{run_dir.name} projects to {self.model.out_dim}; use the run's backbone")
        self.labels = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        self.pairs = list(pairs)
        self.info = {"run": str(run_dir), "encoder": cfg.encoder_name, "backbone": cfg.backbone_name,
                     "labels_cached": lookup.cached, "labels_embedded": lookup.embedded,
                     "untrained": untrained,
                     "calibration": None if self.calibration is None else
                     {"method": self.calibration["method"], "margin": self.calibration["margin"]}}

    def rank(self, names: Sequence[str], features: np.ndarray) -> list[Prediction]:
        from tinyemo_core.projector.io import project

        cos = project(self.model, features) @ self.labels.T if len(features) else \
            np.zeros((0, len(self.pairs)))
        if self.calibration is not None:
            cos = stack(cos, [j for j, (_, text) in enumerate(self.pairs) if text in self.trained],
                        self.calibration["margin"])
        words = [w for w, _ in self.pairs]
        out = []
        for row, name in enumerate(names):
            order = np.argsort(-cos[row], kind="stable")
            out.append(Prediction(str(name), [words[j] for j in order], [float(cos[row, j]) for j in order]))
        return out


def trained_status(run_dir: Path, pairs: Sequence[tuple[str, str]], calibrated: bool
                   ) -> tuple[set[str], list[str] | None, dict[str, Any] | None]:
    """(texts the run trained on, words of ``pairs`` it never trained on or None when unknown, the run's
    calibration when ``calibrated``); a clear error when a calibration is asked for and cannot apply."""
    from tinyemo_core.projector.io import read_calibration, read_trained_labels

    texts = read_trained_labels(run_dir)
    trained = set(texts or [])
    untrained = None if texts is None else [w for w, t in pairs if t not in trained]
    calibration = None
    if calibrated:
        calibration = read_calibration(run_dir)
        if calibration is None:
            raise ValueError(f"run {run_dir.name} has no calibration.json; calibrated runs come from "
                             "`tinyemo run label-transfer` with label_transfer.calibration: stacking "
                             "(docs/experiments.md), or drop --calibrated")
        if texts is None:
            raise ValueError(f"run {run_dir.name} does not record which label texts it trained on "
                             "(trained_labels.json), so its calibration cannot tell seen words; retrain it")
    return trained, untrained, calibration
