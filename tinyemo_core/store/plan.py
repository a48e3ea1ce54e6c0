"""The answer every store kind gives before a stage runs: fingerprint, target path, complete or not."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StorePlan:
    """What a stage will produce: its content fingerprint, where it goes, and whether it is already there.

    Flows call the stage only when ``complete`` is false (or refresh a cached Prefect result that points at
    a store which is gone); the stage itself re-checks, so calling it on a complete store costs nothing.
    """

    fingerprint: str
    path: Path
    complete: bool
