"""The per-request cache of generate-qa:
``generations/<model name>-<fingerprint[:8]>/<dataset>/part-*.jsonl``.

A request's key is (generator fingerprint, image id, prompt turns, sampling), so an interrupted run resumes
without asking an answered prompt again (:mod:`tinyemo_core.generate.cache`). The cache has no completion
marker: every line is a finished answer; the exports built from it (:mod:`tinyemo_core.store.instructions`)
carry the marker.
"""

from __future__ import annotations

from pathlib import Path

from tinyemo_core.store.kind import StoreKind, entry, subdirs
from tinyemo_core.store.plan import StorePlan


class GenerationsStore(StoreKind):
    """Answers of one generator, one sub-folder per dataset."""

    kind = "generations"
    folder = "generations"

    def generator_path(self, generator_dir: str) -> Path:
        return self.root / generator_dir

    def plan(self, generator_dir: str, fingerprint: str) -> StorePlan:  # type: ignore[override]
        """A per-request cache is never "complete": the runner sends what it lacks."""
        return StorePlan(fingerprint, self.generator_path(generator_dir), False)

    def complete(self, path: Path) -> bool:
        return Path(path).is_dir()

    def entries(self):
        for path in subdirs(self.root):
            yield entry(self.kind, path.name, path, None, None, complete=True)
