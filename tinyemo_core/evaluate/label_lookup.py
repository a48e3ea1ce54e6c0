"""Label texts -> vectors in a backbone's space: which complete label tables already hold them (read only;
:func:`tinyemo_core.stages.label_lookup.label_vectors` embeds the missing ones through the labels stage).

A label vector depends only on (backbone fingerprint, text), so any complete table under
``labels/<backbone>/`` written with the same backbone fingerprint can serve it. Texts found nowhere are
embedded once and written as a label table of their own (its fingerprint names the texts), so the next call,
by re-grounding or ``tinyemo predict``, finds them cached.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyemo_core.store.atomic import read_json
from tinyemo_core.store.labels import LabelStore, label_table_complete, read_label_table

LITERAL = "{label}"  # the template under which a free text is stored: render(LITERAL, text) == text


@dataclass
class LabelVectors:
    """Vectors for the requested texts, and where they came from."""

    vectors: dict[str, np.ndarray]
    cached: int = 0
    embedded: int = 0
    tables: list[str] = field(default_factory=list)

    def stack(self, texts: Iterable[str]) -> np.ndarray:
        """(N, dim) float32 in the order of ``texts``."""
        return np.stack([self.vectors[t] for t in texts]).astype(np.float32)


def cached_vectors(
    storage_root: Path, backbone_name: str, backbone_fingerprint: str, texts: Iterable[str]
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Vectors for those of ``texts`` held by complete tables of this backbone fingerprint, and the tables
    used."""
    wanted, found, used = set(texts), {}, []
    for path in LabelStore(storage_root).tables(backbone_name):
        if len(found) == len(wanted):
            break
        summary = read_json(path.with_suffix(".json")) or {}
        if not label_table_complete(path) or summary.get("backbone_fingerprint") != backbone_fingerprint:
            continue
        table = read_label_table(path)
        hits = {t: table.vectors[i] for i, t in enumerate(table.texts) if t in wanted and t not in found}
        if hits:
            found.update(hits)
            used.append(str(path))
    return found, used
