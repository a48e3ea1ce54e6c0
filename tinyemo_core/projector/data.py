"""Training inputs: feature matrices (possibly memory-mapped) with ids into one shared label vocabulary."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class TrainData:
    """One split of (possibly several, jointly trained) datasets.

    ``features`` (N, d_in) float16/float32, may be an ``np.memmap`` or a view of Parquet buffers: it is only
    ever indexed per batch. ``label_ids`` (N,) index the shared label vocabulary (the same word has the same
    id in every taxonomy). ``group_ids`` (N,) say which dataset a row comes from, and
    ``group_candidates[g]`` are dataset g's own candidate label ids (validation scores each dataset against
    its own label set). ``group_names`` are for metrics only. ``synonym_rows`` (N,) bool marks the rows that
    may take a synonym text (rows of datasets with ``synonyms: true``, WEBEmo in the paper); None = no row.
    """

    features: np.ndarray
    label_ids: np.ndarray
    group_ids: np.ndarray | None = None
    group_candidates: list[np.ndarray] | None = None
    group_names: list[str] | None = field(default=None)
    synonym_rows: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.features)
        if self.features.ndim != 2:
            raise ValueError(f"features must be 2-D (N, d_in), got shape {self.features.shape}")
        self.label_ids = np.asarray(self.label_ids, dtype=np.int64)
        if self.label_ids.shape != (n,):
            raise ValueError(f"label_ids must have shape ({n},), got {self.label_ids.shape}")
        if self.group_ids is None:
            self.group_ids = np.zeros(n, dtype=np.int64)
        self.group_ids = np.asarray(self.group_ids, dtype=np.int64)
        if self.group_ids.shape != (n,):
            raise ValueError(f"group_ids must have shape ({n},), got {self.group_ids.shape}")
        if self.group_candidates is not None:
            self.group_candidates = [np.asarray(c, dtype=np.int64) for c in self.group_candidates]
            if n and int(self.group_ids.max()) >= len(self.group_candidates):
                raise ValueError("group_ids refer to a dataset with no entry in group_candidates")
            for g, cands in enumerate(self.group_candidates):
                missing = set(np.unique(self.label_ids[self.group_ids == g]).tolist()) - set(cands.tolist())
                if missing:
                    raise ValueError(f"dataset {self.name(g)}: label ids {sorted(missing)} are not among its "
                                     "candidates; add them to group_candidates")
        if self.synonym_rows is not None:
            self.synonym_rows = np.asarray(self.synonym_rows, dtype=bool)
            if self.synonym_rows.shape != (n,):
                raise ValueError(f"synonym_rows must have shape ({n},), got {self.synonym_rows.shape}")
        if self.group_names is not None and self.group_candidates is not None \
                and len(self.group_names) != len(self.group_candidates):
            raise ValueError("group_names and group_candidates must have the same length")

    def __len__(self) -> int:
        return len(self.features)

    @property
    def in_dim(self) -> int:
        """Width of the feature vectors."""
        return int(self.features.shape[1])

    def name(self, group: int) -> str:
        """Display name of dataset ``group``."""
        return self.group_names[group] if self.group_names else str(group)

    def batch(self, idx: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
        """Rows ``idx`` as a float32 tensor; only these rows are read from a memmap and converted."""
        rows = np.asarray(self.features[idx], dtype=np.float32)
        return torch.from_numpy(rows).to(device)

    def fingerprint(self) -> dict[str, int]:
        """Cheap identity check for resuming: shape and label-id checksum."""
        out = {"n": len(self), "in_dim": self.in_dim,
               "label_sum": int(self.label_ids.sum()), "group_sum": int(self.group_ids.sum())}
        if self.synonym_rows is not None:
            out["synonym_rows"] = int(self.synonym_rows.sum())
        return out


def epoch_batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Shuffled batches covering all n rows; a trailing batch of one row is merged into the previous one
    (BatchNorm cannot train on a single sample), so no training sample is dropped."""
    perm = rng.permutation(n)
    bounds = list(range(0, n, batch_size)) + [n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        bounds.pop(-2)
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        yield np.sort(perm[start:stop])  # sorted: sequential reads from a memmap


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Number of batches ``epoch_batches`` yields."""
    steps = -(-n // batch_size)
    return steps - 1 if steps > 1 and n % batch_size == 1 else steps


def draw_synonyms(label_ids: np.ndarray, synonyms: dict[int, list[int]] | None, prob: float,
                  rng: np.random.Generator, eligible: np.ndarray | None = None) -> np.ndarray:
    """Per-sample synonym augmentation (TinyEmo §IV-C, Appendix C): the label TEXT row of each sample.

    Returns text-row ids: with probability ``prob`` an ``eligible`` row's id is replaced by one of
    ``synonyms[id]`` (chosen uniformly); every other row keeps its own label id. The class id of a sample
    (``label_ids``) is never changed: losses take the returned ids only to look up embeddings, and decide
    positives and negatives by ``label_ids`` (a synonym counts as its class). ``eligible`` (bool per row)
    limits the swap to the datasets that ask for it (``synonyms: true``); None = every row. Called once per
    epoch, so a sample sees different label texts across epochs; the reference fixes one draw per build.
    """
    text_ids = np.asarray(label_ids, dtype=np.int64).copy()
    if not synonyms or prob <= 0:
        return text_ids
    replace = rng.random(len(text_ids)) < prob
    picks = rng.random(len(text_ids))
    if eligible is not None:
        replace &= np.asarray(eligible, dtype=bool)
    for i in np.flatnonzero(replace):
        options = synonyms.get(int(text_ids[i]))
        if options:
            text_ids[i] = options[int(picks[i] * len(options))]
    return text_ids
