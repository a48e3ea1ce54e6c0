"""Prefect cache keys from content fingerprints, the one way a flow brings a stage up to date, and
provenance for what a task writes.

:func:`up_to_date` is the only path from a flow to a stage: the flow asks the stage's plan (a
:class:`~tinyemo_core.store.plan.StorePlan`); a complete store is read back by its store kind and no task
runs; an incomplete one is produced by the stage's cached task, whose cache key is the task name + the plan's
fingerprint scoped to the store root (never Prefect's default, run-scoped policy, which never hits across
runs), refreshed, because the filesystem is the source of truth and a cached descriptor of files that are gone
must not be trusted. Every task body runs through :func:`recorded`, which counts it (:data:`stage_bodies`: a
warm rerun runs none, asserted through Prefect in the tests).
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from prefect.context import TaskRunContext

from tinyemo_core.config import RunConfig
from tinyemo_core.fingerprint import stable_hash
from tinyemo_core.provenance import recorded_as
from tinyemo_core.store.plan import StorePlan

T = TypeVar("T")
#: task name -> how many task bodies ran in this process (read by tests and benchmarks)
stage_bodies: Counter[str] = Counter()
_count_lock = threading.Lock()


def by_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache key = task name + the content fingerprint the flow computed for this call."""
    return f"{context.task.name}:{parameters['key']}"


CACHED = {"cache_key_fn": by_key, "persist_result": True}


def scoped(cfg: RunConfig | Path, fingerprint: str) -> str:
    """A cache key: the content fingerprint scoped to this store root (a descriptor names files in it)."""
    root = cfg.storage_root if isinstance(cfg, RunConfig) else cfg
    return stable_hash(str(root), fingerprint, length=24)


def up_to_date(plan: StorePlan, read: Callable[[StorePlan], T | None], task, /, *, scope: Path,
               tags: list[str] | Callable[[], list[str]] | None = None, **kwargs: Any) -> T:
    """Bring one stage up to date: complete -> ``read(plan)`` (no task runs); incomplete (or unreadable) ->
    ``task(key=<the plan's fingerprint scoped to the store root scope>, **kwargs)``, its Prefect cache
    refreshed. ``tags`` may be a callable, asked only when the task runs (GPU detection imports torch)."""
    if plan.complete and (desc := read(plan)) is not None:
        return desc
    options: dict[str, Any] = {"refresh_cache": True}
    if tags := (tags() if callable(tags) else tags):
        options["tags"] = tags
    return task.with_options(**options)(key=scoped(Path(scope), plan.fingerprint), **kwargs)


def count_stage_body(name: str) -> None:
    """Count one stage body run (tests assert that a warm rerun runs none). A module-level function, so a
    task shipped to a Dask or Ray worker pickles it by reference, never the lock."""
    with _count_lock:
        stage_bodies[name] += 1


def recorded(fn: Callable) -> Callable:
    """Run a task body with its Prefect run identity recorded into every store it writes."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from prefect.runtime import flow_run, task_run

        count_stage_body(fn.__name__)
        with recorded_as(flow=flow_run.flow_name, flow_run=flow_run.name, flow_run_id=flow_run.id,
                         task_run=task_run.name):  # fmt: skip
            return fn(*args, **kwargs)

    return wrapper
