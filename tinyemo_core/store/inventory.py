"""What is in a store root: every store of every kind, complete or not (``tinyemo status``, ``tinyemo gc``).

Each store kind lists its own stores (:meth:`tinyemo_core.store.kind.StoreKind.entries`); this module only
imports every kind so that all of them are registered, and walks them.
"""

from __future__ import annotations

from pathlib import Path

# every store kind registers itself when its module is imported
from tinyemo_core.store import (  # noqa: F401
    activations,
    answers,
    backbones,
    demo_data,
    emotic,
    evaluations,
    experiments,
    features,
    finetune,
    generations,
    instructions,
    labels,
    manifests,
    models,
    reasoning,
    runs,
    splits,
)
from tinyemo_core.store.kind import StoreEntry, StoreKind, all_markers, store_kinds, tree_size

__all__ = ["StoreEntry", "all_markers", "inventory", "kinds", "tree_size"]

#: the kinds ``tinyemo status`` lists first (the projector chain), in this order; the others follow by name
_FIRST = ("manifest", "features", "labels", "run", "evaluation")


def kinds() -> list[type[StoreKind]]:
    """Every store kind, the projector chain first."""
    order = {k: i for i, k in enumerate(_FIRST)}
    return sorted(store_kinds(), key=lambda k: (order.get(k.kind, len(order)), k.kind))


def inventory(root: Path, only: set[str] | None = None) -> list[StoreEntry]:
    """List the stores under ``root`` (a store without its completion marker is reported incomplete);
    ``only``: these kinds."""
    out: list[StoreEntry] = []
    for kind in kinds():
        if only is None or kind.kind in only:
            out.extend(kind(Path(root)).entries())
    return out
