"""Generated answers of evaluated models: ``answers/<model name>-<fingerprint[:8]>/<dataset>/part-*.jsonl``.

The same per-request JSONL cache as generate-qa (:mod:`tinyemo_core.generate.cache`), one folder per
(model fingerprint, dataset); a request's key is (model fingerprint, image id, prompt turns, sampling), so an
interrupted evaluation resumes without asking an answered prompt again.
"""

from __future__ import annotations

from pathlib import Path

from tinyemo_core.store.kind import StoreKind, entry, subdirs
from tinyemo_core.store.plan import StorePlan

ANSWERS = "answers"


def answers_root(storage_root: Path) -> Path:
    """The root the generation runner writes under (it adds ``<model dir>/<dataset>``)."""
    return Path(storage_root) / ANSWERS


def answers_dir(storage_root: Path, generator_dir: str) -> Path:
    """One evaluated model's answers (``generator_dir`` from ``generate.runner.generator_dir``)."""
    return answers_root(storage_root) / generator_dir


class AnswersStore(StoreKind):
    """Answers of one evaluated model, one sub-folder per dataset (a per-request cache: no marker)."""

    kind = "answers"
    folder = ANSWERS

    def plan(self, generator_dir: str, fingerprint: str) -> StorePlan:  # type: ignore[override]
        return StorePlan(fingerprint, answers_dir(self.storage_root, generator_dir), False)

    def complete(self, path: Path) -> bool:
        return Path(path).is_dir()

    def entries(self):
        for path in subdirs(self.root):
            yield entry(self.kind, path.name, path, None, None, complete=True)
