"""Typed settings of the interpretability tools (the optional ``interpret:`` block of a profile)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PointName = Literal["linear", "bn", "gelu"]


class InterpretSpec(BaseModel):
    """Neuron atlas, ablation, retrieval and counterfactual settings; defaults follow TinyEmo §V-C/App. E."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = None  # default: the profile's first zero-shot dataset (the paper: UnbiasedEmo)
    checkpoint: Literal["best", "last"] = "best"
    point: PointName = "linear"  # where layer-0 activations are read (the first Linear's output, as logged)
    ablation_point: PointName = "gelu"  # where a neuron is zeroed for ablation (the hidden unit itself)
    splits: list[str] | None = None  # rows of the activation store; None = every split (the paper: all)
    ablation_splits: list[str] = ["test"]
    dtype: Literal["float16", "float32"] = "float16"  # activation store precision
    top_k: int = Field(50, gt=0)  # detection rate = share of a neuron's top-k activations in a class
    per_class: int = Field(3, gt=0)  # most selective neurons listed per class
    grid_neurons: int = Field(6, ge=0)  # image grids drawn for this many of the most selective neurons
    grid_images: int = Field(10, gt=0)  # images per neuron grid (the paper shows its top 10)
    query: str | None = None  # bias report: an image file, an image id of the dataset, or a text
    k: int = Field(16, gt=0)  # retrieved neighbours
    subset_top: int = Field(10, gt=0)  # neurons most activated by the retrieved subset
    neurons: list[int] = []  # neurons to follow in counterfactuals (default: the subset's top 3)
    pairs: Path | None = None  # counterfactual folder (original/ + edited/)
    target: str | None = None  # label whose distance the counterfactuals track (default: original's top-1)
    concepts: Path | None = None  # concept file (default: the bundled list)
    distance_threshold: float = Field(0.02, ge=0)
    flip_threshold: float = Field(0.1, ge=0, le=1)
    shift_share: float = Field(0.5, ge=0, le=1)
