"""Typed training settings for the Metric Projector (composed into flows.yaml by tinyemo_core.config)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TrainingSpec(BaseModel):
    """Projector training settings; defaults are the paper's (TinyEmo §III-B, §IV, Table VIII; see
    docs/projector.md).

    ``loss``: Table VIII trains "with cosine embedding loss unless stated otherwise" (Eq. 3,
    semi-contrastive); only TinyEmo-700M* uses NTXent (Eq. 2). ``synonym_prob``: chance that a row of a
    ``synonyms: true`` dataset takes a synonym text in an epoch (§IV-C: 50 %); 0 = Table V's "Normal" column.
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
