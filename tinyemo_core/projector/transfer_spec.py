"""Settings of the generalized zero-shot protocol (``tinyemo run label-transfer``; flows.yaml
``profiles.<p>.label_transfer``) and of the word-derived demo dataset. No torch import (config reads it)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tinyemo_core.data.demo_words import WORDS


class WordDemoSpec(BaseModel):
    """Generate the word-derived demo dataset (``tinyemo_core.data.demo_words``) into ``dataset``'s root
    before ingesting: one class per word, its appearance fixed by the word's label embedding in the
    profile's backbone (top ``dims`` principal coordinates -> colour-pattern coefficients)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str  # a dataset of flows.yaml (layout imagefolder) whose root receives the images
    words: list[str] = Field(default_factory=lambda: list(WORDS), min_length=4)
    seed: int = 0
    images_per_class: int = Field(16, ge=4)
    image_size: int = Field(48, ge=16)
    dims: int = Field(8, ge=1)
    noise: float = Field(0.3, ge=0)  # per-image jitter of the pattern coefficients (their SD is 1)


class LabelTransferSpec(BaseModel):
    """Generalized zero-shot learning over a dataset's own classes (docs/experiments.md).

    Each dataset's classes are split, seeded, into ``folds`` disjoint groups; in fold k group k is unseen:
    the projector trains on the other classes only and is scored over ALL the dataset's label words.
    ``calibration: stacking`` subtracts a margin from the scores of seen words (Chao et al., ECCV 2016),
    chosen on training data only: ``pseudo_splits`` times, ``pseudo_unseen`` of the seen classes are held
    out, a projector trains on the rest, and the margin maximising the harmonic mean on those training
    classes is kept (median of the best margins; averaged H over pseudo splits). ``none`` reports the raw
    scores only. The permuted-word control is reported whenever a margin is applied.
    """

    model_config = ConfigDict(extra="forbid")

    datasets: list[str] = []  # default: the profile's held-in datasets
    folds: int = Field(4, ge=2)
    seed: int = 0
    calibration: Literal["none", "stacking"] = "none"
    pseudo_unseen: int | None = Field(None, ge=1)  # default: the fold's unseen share of the seen classes
    pseudo_splits: int = Field(1, ge=1)
    max_margin: float = Field(1.0, gt=0)  # margins searched: 0 .. max_margin in steps of margin_step
    margin_step: float = Field(0.005, gt=0)
    demo_words: WordDemoSpec | None = None
