"""LLaVA-format instruction exports: ``instructions/<dataset>/<kind>_<split>.json`` (+ ``export.json``).

generate-qa writes ``pretrain_<split>.json`` and ``emoreason_<split>.json`` (TinyEmo) or
``emovit_<split>.json`` (EmoVIT) here; the fine-tuning stages read ``<export>.json`` by name.
``export.json`` is written last: it records the fingerprint of the inputs (manifest content, generation
settings, generator identity) and the files, so a rerun with the same inputs finds the exports complete and
rewrites nothing. Exports placed here by hand (a profile without a ``generation:`` block) have no
``export.json`` and are read as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyemo_core.provenance import current
from tinyemo_core.store.atomic import read_json, write_json
from tinyemo_core.store.kind import StoreKind, entry, subdirs
from tinyemo_core.store.plan import StorePlan

MARKER = "export.json"


class InstructionsStore(StoreKind):
    """The instruction exports of one dataset (one folder per dataset, rewritten when its inputs change)."""

    kind = "instructions"
    folder = "instructions"
    markers = (MARKER,)

    def path(self, dataset: str) -> Path:
        return self.root / dataset

    def plan(self, dataset: str, fingerprint: str) -> StorePlan:  # type: ignore[override]
        path = self.path(dataset)
        data = read_json(path / MARKER)
        done = bool(data) and data.get("fingerprint") == fingerprint and all(
            Path(f).is_file() for f in data.get("files", {}).values())
        return StorePlan(fingerprint, path, done)

    def read(self, plan: StorePlan) -> dict[str, Any] | None:
        if not plan.complete:
            return None
        data = read_json(plan.path / MARKER) or {}
        return {**data, "path": str(plan.path), "computed": False}

    def begin(self, plan: StorePlan) -> Path:
        """Before (re)writing: drop the marker, so a killed export is never taken for complete."""
        plan.path.mkdir(parents=True, exist_ok=True)
        (plan.path / MARKER).unlink(missing_ok=True)
        return plan.path

    def commit(self, plan: StorePlan, summary: dict[str, Any]) -> dict[str, Any]:
        """Write ``export.json`` last (the export's files are already in place)."""
        payload = {**summary, "fingerprint": plan.fingerprint, "produced_by": current()}
        write_json(plan.path / MARKER, payload)
        return {**payload, "path": str(plan.path), "computed": True}

    def entries(self):
        for path in subdirs(self.root):
            meta = read_json(path / MARKER)
            # hand-placed exports have no marker and are complete as they are
            done = meta is not None or any(path.glob("*.json"))
            yield entry(self.kind, path.name, path, meta, (meta or {}).get("fingerprint"), complete=done)
