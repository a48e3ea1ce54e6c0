"""Conditional-reasoning outputs: ``reasoning/<dataset|images>-<fingerprint[:12]>/`` (TinyEmo §III-C).

Inside: ``reasoning.parquet`` (one row per image), ``samples.md``, ``comparison.md`` (normal vs conditional
answers, Fig. 9) and ``result.json`` (counts, agreement rate) written last: it marks the folder complete. The
folder is staged and renamed into place, so it is either absent or whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from tinyemo_core.store.atomic import read_json, staged_dir, write_json, write_parquet, write_text
from tinyemo_core.store.kind import StoreKind
from tinyemo_core.store.plan import StorePlan

RESULT = "result.json"
ROWS = "reasoning.parquet"
SAMPLES = "samples.md"
COMPARISON = "comparison.md"


class ReasoningStore(StoreKind):
    """One conditional-reasoning result per (images, projector run, reasoner, settings)."""

    kind = "reasoning"
    folder = "reasoning"
    markers = (RESULT,)

    def path(self, name: str, fingerprint: str) -> Path:
        return self.root / f"{name}-{fingerprint[:12]}"

    def plan(self, name: str, fingerprint: str) -> StorePlan:  # type: ignore[override]
        path = self.path(name, fingerprint)
        return StorePlan(fingerprint, path, self.complete(path))

    def complete(self, path: Path) -> bool:
        return self.folder_complete(path)

    def read(self, plan: StorePlan) -> dict[str, Any] | None:
        return self.read_folder(plan.path)

    @staticmethod
    def folder_complete(path: Path) -> bool:
        return read_json(Path(path) / RESULT) is not None and (Path(path) / ROWS).exists()

    @staticmethod
    def read_folder(path: Path) -> dict[str, Any] | None:
        """A complete folder's ``result.json`` plus its path (``cached``: it was not redone)."""
        if not ReasoningStore.folder_complete(path):
            return None
        return {**read_json(Path(path) / RESULT), "path": str(path), "cached": True, "computed": False}

    @staticmethod
    def write_folder(path: Path, rows: list[dict], samples_md: str, comparison_md: str,
                     result: dict[str, Any]) -> dict[str, Any]:
        """The whole folder, staged and renamed into place, ``result.json`` last."""
        result = {**result, "files": [ROWS, SAMPLES, COMPARISON]}
        with staged_dir(Path(path)) as tmp:
            write_parquet(tmp / ROWS, pa.Table.from_pylist(rows))
            write_text(tmp / SAMPLES, samples_md)
            write_text(tmp / COMPARISON, comparison_md)
            write_json(tmp / RESULT, result)
        return {**result, "path": str(path), "cached": False, "computed": True}


def reasoning_markdown(path: Path) -> str:
    """samples.md and comparison.md of a reasoning folder, joined (what the flow publishes)."""
    parts = [Path(path) / f for f in (SAMPLES, COMPARISON)]
    return "\n\n".join(p.read_text() for p in parts if p.exists())
