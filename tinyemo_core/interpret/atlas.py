"""Neuron atlas: each neuron's top activating images and its detection rate for every class (Appendix E-B).

Detection rate of neuron j for class v of attribute a (TinyEmo Appendix E-B: "the percentage of top 50
activations associated with that class") = share of j's top-k images (k = 50 by default) that carry v. The
emotion label is the attribute ``label``; other attributes come from the manifest's ``attributes`` JSON
(UnbiasedEmo ``subject``, e.g. cat/scenery/teacher; EmoSet ``scene``, ``object``, ``facial_expression``,
``human_action``). String values and lists of strings count; numbers (brightness, colorfulness) do not.
Prevalence (the class's share of the whole dataset) is reported next to each rate: a 46 % detection rate
means more for a class that is 3 % of the images than for one that is 40 %.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SKIPPED_ATTRIBUTES = frozenset({"alias_conflicts", "people", "emotion"})


def parse_attributes(raw: str | dict | None) -> dict[str, list[str]]:
    """The categorical attributes of one manifest row: key -> list of string values (empty ones dropped)."""
    data = json.loads(raw) if isinstance(raw, str) else (raw or {})
    out: dict[str, list[str]] = {}
    for key, value in data.items():
        if key in SKIPPED_ATTRIBUTES:
            continue
        values = value if isinstance(value, list) else [value]
        words = [v.strip() for v in values if isinstance(v, str) and v.strip()]
        if words:
            out[key] = sorted(set(words))
    return out


@dataclass
class ClassMatrix:
    """Boolean membership (N, V) of every row in every class value of one attribute."""

    attribute: str
    values: list[str]
    member: np.ndarray


def class_matrices(labels: Sequence[Sequence[str]],
                   attributes: Sequence[str | dict | None]) -> list[ClassMatrix]:
    """Membership matrices for ``label`` (every label of a row) and each categorical attribute present."""
    per_attr: dict[str, list[list[str]]] = {"label": [list(x) for x in labels]}
    parsed = [parse_attributes(a) for a in attributes]
    keys = sorted({k for p in parsed for k in p})
    for key in keys:
        per_attr[key] = [p.get(key, []) for p in parsed]
    out = []
    for key, rows in per_attr.items():
        values = sorted({v for r in rows for v in r})
        if not values:
            continue
        index = {v: i for i, v in enumerate(values)}
        member = np.zeros((len(rows), len(values)), dtype=bool)
        for i, r in enumerate(rows):
            member[i, [index[v] for v in r]] = True
        out.append(ClassMatrix(key, values, member))
    return out


def top_k(acts: np.ndarray, k: int = 50, *, block: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Per neuron the rows of its k highest activations, highest first: (indices (H, k), values (H, k)).

    One pass over row blocks of ``block`` rows (contiguous reads of a memory-mapped (N, H) store), keeping a
    running top-k per neuron, so memory stays (k + block, H). Order: activation descending, then row; which
    of several rows tied exactly at the k-th value is kept is unspecified.
    """
    n, h = acts.shape
    if n == 0:
        raise ValueError("no activations: the store holds no rows")
    k = min(int(k), n)
    best_val = np.zeros((h, 0), np.float32)  # (H, <=k), neuron-major so partitions run on contiguous rows
    best_idx = np.zeros((h, 0), np.int64)
    for start in range(0, n, block):
        x = np.ascontiguousarray(np.asarray(acts[start:start + block], dtype=np.float32).T)  # (H, b)
        cand_val = np.concatenate([best_val, x], axis=1)
        rows = np.broadcast_to(np.arange(start, start + x.shape[1]), x.shape)
        cand_idx = np.concatenate([best_idx, rows], axis=1)
        if cand_val.shape[1] > k:
            part = np.argpartition(-cand_val, k - 1, axis=1)[:, :k]
            cand_val = np.take_along_axis(cand_val, part, axis=1)
            cand_idx = np.take_along_axis(cand_idx, part, axis=1)
        best_val, best_idx = cand_val, cand_idx
    val, idx = best_val, best_idx  # (H, k)
    order = np.lexsort((idx, -val))  # per neuron: activation descending, then row number
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(val, order, axis=1)


def detection_rates(top_idx: np.ndarray, matrices: Sequence[ClassMatrix]) -> list[dict]:
    """Long table: one row per (neuron, attribute, value) with a non-zero detection rate."""
    rows = []
    k = top_idx.shape[1]
    for cm in matrices:
        counts = cm.member[top_idx].sum(axis=1)  # (H, V)
        prevalence = cm.member.mean(axis=0)
        js, vs = np.nonzero(counts)
        for j, v in zip(js.tolist(), vs.tolist(), strict=True):
            rate = counts[j, v] / k
            rows.append({"neuron": j, "attribute": cm.attribute, "value": cm.values[v],
                         "count": int(counts[j, v]), "rate": float(rate), "prevalence": float(prevalence[v]),
                         "lift": float(rate / prevalence[v]) if prevalence[v] else 0.0})
    return rows


def most_selective(rates: Sequence[dict], per_class: int = 3, *, min_count: int = 1) -> list[dict]:
    """For every (attribute, value): the ``per_class`` neurons of highest detection rate (ties: higher
    lift, then lower neuron index), best class first within each attribute. A class every image carries
    (prevalence 100 %, e.g. one scene for a whole dataset) tells nothing and is left out."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rates:
        if r["count"] >= min_count and r["prevalence"] < 1.0:
            groups.setdefault((r["attribute"], r["value"]), []).append(r)
    out = []
    for (_attr, _value), items in sorted(groups.items()):
        items.sort(key=lambda r: (-r["rate"], -r["lift"], r["neuron"]))
        out += [{**r, "rank": i + 1} for i, r in enumerate(items[:per_class])]
    out.sort(key=lambda r: (r["attribute"] != "label", r["attribute"], r["rank"], -r["rate"], r["value"]))
    return out


def subset_neurons(acts: np.ndarray, rows: Sequence[int], top: int = 20, *,
                   stats: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict]:
    """Neurons most activated by a chosen subset of rows (TinyEmo §V-C step 2: "what neurons activate the
    most for the chosen samples?"): ranked by the subset's mean activation, with its z-score against the
    neuron's mean and std over the whole dataset (``stats`` = (mean, std) if already known)."""
    rows = np.asarray(list(rows), dtype=np.int64)
    if rows.size == 0:
        raise ValueError("the subset is empty; pass at least one image")
    if rows.min() < 0 or rows.max() >= len(acts):
        raise IndexError(f"subset row out of range 0..{len(acts) - 1}")
    sub = np.asarray(acts[np.sort(rows)], dtype=np.float64).mean(axis=0)
    mean, std = stats if stats is not None else column_stats(acts)
    z = (sub - mean) / np.maximum(std, 1e-12)
    order = np.lexsort((np.arange(len(sub)), -sub))[:top]
    return [{"neuron": int(j), "subset_mean": float(sub[j]), "dataset_mean": float(mean[j]),
             "zscore": float(z[j])} for j in order]


def column_stats(acts: np.ndarray, block: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron mean and std over all rows, streamed in row blocks (float64 accumulators)."""
    n, h = acts.shape
    s = np.zeros(h, np.float64)
    sq = np.zeros(h, np.float64)
    for start in range(0, n, block):
        x = np.asarray(acts[start:start + block], dtype=np.float64)
        s += x.sum(axis=0)
        sq += (x * x).sum(axis=0)
    mean = s / max(n, 1)
    return mean, np.sqrt(np.maximum(sq / max(n, 1) - mean * mean, 0.0))
