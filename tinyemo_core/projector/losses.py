"""The paper's two projector losses (TinyEmo §III-B, Eq. 2 and 3).

Both take ``class_ids`` (who is a positive of whom) and optional ``text_ids`` (which label-table row is a
sample's target text; differs from its class id only for a synonym draw, TinyEmo Appendix C). A synonym row
carries its sample's class id, so "sorrow" drawn for a "sadness" image is a positive of every "sadness" image
in the batch and never a negative (the authors' code swaps the text and keeps the class id).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from pytorch_metric_learning.losses import NTXentLoss
from torch import nn

ProjectorLoss = Callable[..., torch.Tensor]


class SemiContrastiveLoss(nn.Module):
    """Eq. 3: ``CosineEmbeddingLoss(margin)`` with every target +1, i.e. mean(1 − cos(image, own label)).

    Only positives are pulled together; nothing is pushed apart, so the margin never takes effect.
    """

    def __init__(self, margin: float = 0.5) -> None:
        super().__init__()
        self.inner = nn.CosineEmbeddingLoss(margin=margin)

    def forward(self, images: torch.Tensor, class_ids: torch.Tensor, label_table: torch.Tensor,
                text_ids: torch.Tensor | None = None) -> torch.Tensor:
        """``images`` (B, D); the target of row i is ``label_table[text_ids[i]]`` (default: its class id)."""
        ones = torch.ones(images.shape[0], device=images.device, dtype=images.dtype)
        return self.inner(images, label_table[class_ids if text_ids is None else text_ids], ones)


class FullyContrastiveLoss(nn.Module):
    """Eq. 2: pytorch-metric-learning ``NTXentLoss`` with label-text embeddings as the reference set.

    Called as the reference does, ``loss(images, ids, ref_emb=label_table[ids], ref_labels=ids)``: each
    image's keys are the batch's label embeddings (one row per sample); rows with the same id are positives,
    every other row an in-batch negative, so negatives span the taxonomies mixed in a batch.

    Reference defect fixed: the reference passes the *same* tensor as ``labels`` and ``ref_labels``;
    pytorch-metric-learning then takes the call for self-comparison (``ref_labels is labels``) and drops the
    diagonal, so an image's own label row is never its positive and a sample whose label is unique in the
    batch contributes no loss at all. Eq. 2 makes the image's own label ``P_t^+``, so we pass a copy.
    """

    def __init__(self, temperature: float = 0.07) -> None:
        super().__init__()
        self.inner = NTXentLoss(temperature=temperature)

    @staticmethod
    def references(class_ids: torch.Tensor, label_table: torch.Tensor,
                   text_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The keys of Eq. 2: one row per sample, its (possibly synonym) text embedding, labelled by its
        CLASS id. A distinct label tensor keeps each image's own row a positive (see the class docstring)."""
        rows = class_ids if text_ids is None else text_ids
        return label_table[rows], class_ids.clone()

    def forward(self, images: torch.Tensor, class_ids: torch.Tensor, label_table: torch.Tensor,
                text_ids: torch.Tensor | None = None) -> torch.Tensor:
        """``images`` (B, D), ``class_ids`` (B,) positives/negatives, ``text_ids`` (B,) rows of
        ``label_table`` (V, D) used as each sample's key (default: the class ids)."""
        ref_emb, ref_labels = self.references(class_ids, label_table, text_ids)
        return self.inner(images, class_ids, ref_emb=ref_emb, ref_labels=ref_labels)


def build_loss(kind: Literal["cosine", "ntxent"], *, temperature: float = 0.07,
               margin: float = 0.5) -> nn.Module:
    """The loss named by ``TrainingSpec.loss``."""
    if kind == "cosine":
        return SemiContrastiveLoss(margin=margin)
    if kind == "ntxent":
        return FullyContrastiveLoss(temperature=temperature)
    raise ValueError(f"unknown loss {kind!r}: use 'cosine' (semi-contrastive) or 'ntxent' (contrastive)")
