"""The bundled demo datasets: ``demo_data/<dataset>/`` with ``.tinyemo-demo.json`` (its parameters) written
last; a folder whose marker holds other parameters is rebuilt (:mod:`tinyemo_core.data.demo`)."""

from __future__ import annotations

from typing import Any

from tinyemo_core.fingerprint import stable_hash
from tinyemo_core.store.atomic import read_json
from tinyemo_core.store.kind import StoreKind, entry, subdirs
from tinyemo_core.store.plan import StorePlan

MARKER = ".tinyemo-demo.json"


class DemoDataStore(StoreKind):
    """Every demo dataset under ``demo_data/``, built together from one set of parameters."""

    kind = "demo-data"
    folder = "demo_data"
    markers = (MARKER,)

    def plan(self, names: list[str], spec: Any) -> StorePlan:  # type: ignore[override]
        """Complete when every dataset of ``names`` carries its marker."""
        done = all((self.root / n / MARKER).exists() for n in names)
        return StorePlan(stable_hash("demo", spec), self.root, done)

    def read(self, plan: StorePlan) -> dict[str, Any] | None:
        if not plan.complete:
            return None
        return {"root": str(self.root), "datasets": sorted(p.name for p in subdirs(self.root)),
                "computed": False}

    def entries(self):
        for path in subdirs(self.root):
            yield entry(self.kind, path.name, path, read_json(path / MARKER), None)
