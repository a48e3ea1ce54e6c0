"""Ranking vectors around a query in the projected (label-embedding) space: retrieval and concept probing.

All vectors are L2-normalised, so three equivalent scores are reported (TinyEmo Fig. 12 uses "cosine
distance, as embeddings are L2 normalized"; Fig. 7's token distances, e.g. "anger" 0.33, do not say which):

- ``cosine``: cos(q, v);
- ``distance``: cosine distance 1 - cos, in [0, 2] (the figure captions' distance, Fig. 12);
- ``l2``: Euclidean distance between the unit vectors, sqrt(2 - 2 cos), in [0, 2].

All three give the same order, so rankings never depend on the choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

BUNDLED_CONCEPTS = "concepts.yaml"


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def scores_from_cosine(cos: np.ndarray | float) -> dict[str, np.ndarray | float]:
    cos = np.clip(cos, -1.0, 1.0)
    return {"cosine": cos, "distance": 1.0 - cos, "l2": np.sqrt(np.maximum(2.0 - 2.0 * cos, 0.0))}


def rank(query: np.ndarray, vectors: np.ndarray, names: Sequence[str], *, top: int | None = None,
         bottom: int = 0, extra: Sequence[dict] | None = None) -> list[dict]:
    """Every row of ``vectors`` ranked by cosine to ``query`` (best first; ties: lower row). Returns the
    first ``top`` (all when None) and the last ``bottom`` rows, each with rank (1-based) and the three
    scores; ``extra`` adds per-row fields (e.g. the concept's group)."""
    if vectors.ndim != 2 or vectors.shape[1] != query.shape[-1]:
        raise ValueError(f"query has {query.shape[-1]} dims but the vectors have {vectors.shape}; "
                         "use the run's backbone")
    cos = unit(vectors) @ unit(query.reshape(-1))
    order = np.lexsort((np.arange(len(cos)), -cos))
    picked = list(order if top is None else order[:top])
    if bottom:
        tail = [i for i in order[-bottom:] if i not in set(picked)]
        picked += tail
    position = {int(i): r for r, i in enumerate(order)}
    rows = []
    for i in picked:
        s = scores_from_cosine(float(cos[i]))
        row = {"rank": position[int(i)] + 1, "name": names[i], **{k: float(v) for k, v in s.items()}}
        if extra is not None:
            row.update(extra[i])
        rows.append(row)
    return rows


@dataclass(frozen=True)
class ConceptList:
    """Concept texts with the group each belongs to, in file order, and where they came from."""

    texts: list[str]
    groups: list[str]
    source: str


def load_concepts(path: Path | str | None = None) -> ConceptList:
    """The bundled list (None) or a user file: YAML ``{groups: {name: [text, ...]}}`` (or a plain
    ``{name: [...]}`` mapping, or a list), or a text file with one concept per line (``#`` comments)."""
    if path is None:
        text = resources.files("tinyemo_core.interpret").joinpath(BUNDLED_CONCEPTS).read_text("utf-8")
        source = f"bundled:{BUNDLED_CONCEPTS}"
        data = yaml.safe_load(text)
    else:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"concept file {p} not found; pass a YAML or a one-concept-per-line file")
        source = str(p)
        if p.suffix.lower() in (".yaml", ".yml", ".json"):
            try:
                data = yaml.safe_load(p.read_text("utf-8"))
            except yaml.YAMLError as exc:
                raise ValueError(f"concept file {p} is not valid YAML: {exc}") from exc
        else:
            data = [ln.strip() for ln in p.read_text("utf-8").splitlines()
                    if ln.strip() and not ln.lstrip().startswith("#")]
    if isinstance(data, dict) and "groups" in data:
        data = data["groups"]
    if isinstance(data, list):
        data = {"concepts": data}
    if not isinstance(data, dict):
        raise ValueError(f"concept file {source}: expected groups of concept lists, "
                         f"got {type(data).__name__}")
    texts, groups, seen = [], [], set()
    for group, items in data.items():
        if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
            raise ValueError(f"concept file {source}: group {group!r} must be a list of strings")
        for t in items:
            t = t.strip()
            if t and t not in seen:
                seen.add(t)
                texts.append(t)
                groups.append(str(group))
    if not texts:
        raise ValueError(f"concept file {source} lists no concepts")
    return ConceptList(texts, groups, source)
