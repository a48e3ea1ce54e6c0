"""Label texts -> vectors in a backbone's space: the label store's cached vectors, the rest embedded by the
labels stage (written as a label table of their own, so the next call finds them cached).

Used by re-grounding (Table VII), ``tinyemo predict`` and the interpretability stages. The read-only half
(which complete table holds a text) is :mod:`tinyemo_core.evaluate.label_lookup`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tinyemo_core.encoders.specs import BackboneSpec
from tinyemo_core.evaluate.label_lookup import LITERAL, LabelVectors, cached_vectors
from tinyemo_core.stages import labels as labels_stage
from tinyemo_core.store.labels import read_label_table


def label_vectors(
    spec: BackboneSpec,
    backbone_name: str,
    storage_root: Path,
    texts: Iterable[str],
    *,
    backbone_fingerprint: str | None = None,
) -> LabelVectors:
    """Vectors for ``texts``: cached ones from the label store, the rest embedded with the backbone and
    stored as a new label table (with its FAISS index, like every label table)."""
    texts = list(dict.fromkeys(texts))
    fp = backbone_fingerprint or labels_stage.backbone_fingerprint(spec)
    found, used = cached_vectors(storage_root, backbone_name, fp, texts)
    missing = [t for t in texts if t not in found]
    if missing:
        desc = labels_stage.embed_labels(
            spec, backbone_name, [(t, LITERAL) for t in missing], Path(storage_root), fp
        )
        table = read_label_table(Path(desc["table"]))
        found.update({t: table.vectors[i] for i, t in enumerate(table.texts) if t in set(missing)})
        used.append(desc["table"])
    return LabelVectors({t: found[t] for t in texts}, len(texts) - len(missing), len(missing), used)
