"""Experiment tables: ``experiments/<name>-<fingerprint of inputs>/`` (Table III ablation, Table IV grid,
Table VII re-grounding). The same inputs land in the same folder; the JSON written last marks it complete
(``table.json`` for the ablation and the grid, ``regrounding.json`` for re-grounding, ``label_transfer.json``
for the generalized zero-shot report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyemo_core.fingerprint import stable_hash
from tinyemo_core.store.atomic import read_json
from tinyemo_core.store.kind import StoreKind, entry, subdirs
from tinyemo_core.store.plan import StorePlan

TABLE = "table.json"
TABLE_MD = "table.md"
REGROUNDING = "regrounding.json"
REGROUNDING_MD = "regrounding.md"
PREDICTIONS = "predictions.parquet"
LABEL_TRANSFER = "label_transfer.json"
LABEL_TRANSFER_MD = "label_transfer.md"


def experiment_dir(storage_root: Path, name: str, *inputs: Any) -> Path:
    """``experiments/<name>-<fingerprint of inputs>``."""
    return Path(storage_root) / "experiments" / f"{name}-{stable_hash(name, *inputs, length=12)}"


def read_regrounding(out_dir: Path) -> dict | None:
    """A finished re-grounding's ``regrounding.json``, or None."""
    return read_json(Path(out_dir) / REGROUNDING)


class ExperimentStore(StoreKind):
    """One folder per (experiment, inputs)."""

    kind = "experiment"
    folder = "experiments"
    markers = (TABLE, REGROUNDING, LABEL_TRANSFER)

    def plan(self, name: str, *inputs: Any) -> StorePlan:  # type: ignore[override]
        path = experiment_dir(self.storage_root, name, *inputs)
        return StorePlan(path.name.rsplit("-", 1)[-1], path, self.complete(path))

    def complete(self, path: Path) -> bool:
        return any((Path(path) / m).exists() for m in self.markers)

    def read(self, plan: StorePlan) -> dict | None:
        """A finished re-grounding's descriptor (what the re-grounding stage returns)."""
        data = read_regrounding(plan.path)
        return None if data is None else {"out_dir": str(plan.path), "computed": False, **data}

    def read_table(self, plan: StorePlan) -> dict | None:
        """A finished table's files (what ``stages.experiments.write_experiment`` returns), or None."""
        if not (plan.path / TABLE).exists():
            return None
        return {"markdown": str(plan.path / TABLE_MD), "json": str(plan.path / TABLE), "computed": False}

    def read_label_transfer(self, plan: StorePlan) -> dict | None:
        """A finished label-transfer report (what ``stages.label_transfer.write_report`` returns), or None."""
        data = read_json(plan.path / LABEL_TRANSFER)
        if data is None:
            return None
        return {"out_dir": str(plan.path), "markdown": str(plan.path / LABEL_TRANSFER_MD), "computed": False,
                **data}

    @staticmethod
    def markdown_path(path: Path) -> Path:
        """The folder's Markdown table (``regrounding.md`` or ``table.md``)."""
        regrounding = Path(path) / REGROUNDING_MD
        return regrounding if regrounding.exists() else Path(path) / TABLE_MD

    def markdown(self, path: Path) -> str:
        md = self.markdown_path(path)
        return md.read_text() if md.exists() else ""

    def entries(self):
        for path in subdirs(self.root):
            meta = next((m for name in self.markers if (m := read_json(path / name)) is not None), None)
            if meta is not None and isinstance(meta.get("rows"), list):  # table / label-transfer: row dicts
                meta = {**meta, "rows": len(meta["rows"])}
            yield entry(self.kind, path.name, path, meta, path.name.rsplit("-", 1)[-1])
