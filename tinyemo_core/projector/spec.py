"""Typed training settings for the Metric Projector (composed into flows.yaml by tinyemo_core.config)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer

# Settings added after runs were fingerprinted: they appear in a dump (hence in every fingerprint and in a
# run's config.json) only when set, so every run trained without them keeps its name.
OPTIONAL_SETTINGS = ("word_mixup",)


class WordMixupSpec(BaseModel):
    """Label-embedding mixup (docs/projector.md, "Words never trained on"): an extra cosine term pulls the
    projection of a feature mix ``lam*x_i + (1-lam)*x_j`` onto the same mix of the two label embeddings,
    ``lam ~ Beta(alpha, alpha)``, so the space between seen words follows the backbone's word geometry."""

    model_config = ConfigDict(extra="forbid")

    weight: float = Field(1.0, gt=0)
    alpha: float = Field(1.0, gt=0)


class TrainingSpec(BaseModel):
    """Projector training settings; defaults are the paper's (TinyEmo §III-B, §IV, Table VIII; see
    docs/projector.md).

    ``loss``: Table VIII trains "with cosine embedding loss unless stated otherwise" (Eq. 3,
    semi-contrastive); only TinyEmo-700M* uses NTXent (Eq. 2). ``synonym_prob``: chance that a row of a
    ``synonyms: true`` dataset takes a synonym text in an epoch (§IV-C: 50 %); 0 = Table V's "Normal" column.
    ``word_mixup``: not in the paper, off by default (see :class:`WordMixupSpec`).
    """

    model_config = ConfigDict(extra="forbid")

    loss: Literal["cosine", "ntxent"] = "cosine"
    temperature: float = Field(0.07, gt=0)  # NTXent temperature (pytorch-metric-learning default)
    margin: float = 0.5  # CosineEmbeddingLoss margin; only matters for -1 targets, which we never use
    epochs: int = Field(5, gt=0)
    batch_size: int = Field(32, gt=0)
    lr: float = Field(2e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    max_lr: float = Field(5e-4, gt=0)
    pct_start: float = Field(0.005, gt=0, lt=1)
    dropout: float = Field(0.2, ge=0, lt=1)
    hidden_dim: int | None = Field(None, gt=0)  # None = the label-embedding width (paper)
    synonym_prob: float = Field(0.5, ge=0, le=1)
    seed: int = 0
    device: str = "cpu"
    word_mixup: WordMixupSpec | None = None

    @model_serializer(mode="wrap")
    def _omit_unset_optional(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        for key in OPTIONAL_SETTINGS:
            if data.get(key, 0) is None:
                del data[key]
        return data
