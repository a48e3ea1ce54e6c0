"""Progress artifacts: what the Prefect UI shows while a long task runs."""

from __future__ import annotations

import time
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact


class ThrottledProgress:
    """``progress(done, total[, note])`` keeps one Prefect progress artifact current, updated at most every
    ``interval_s`` seconds (always at completion). The artifact is created on the first call; ``note``
    (e.g. "120/400 requests, 35 tok/s, ETA 2 min") replaces the artifact's description."""

    def __init__(self, key: str, description: str, interval_s: float = 2.0) -> None:
        self.key, self.description, self.interval_s = key, description, interval_s
        self.artifact_id: UUID | None = None
        self.last = float("-inf")

    def __call__(self, done: int, total: int, note: str | None = None) -> None:
        now = time.monotonic()
        if done < total and now - self.last < self.interval_s:
            return
        self.last = now
        pct = 100.0 * done / max(total, 1)
        text = f"{self.description}: {note}" if note else self.description
        if self.artifact_id is None:
            self.artifact_id = create_progress_artifact(pct, key=self.key, description=text)
        else:
            update_progress_artifact(self.artifact_id, pct, description=text if note else None)
