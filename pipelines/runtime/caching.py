"""Prefect cache keys from content fingerprints, and provenance for what a task writes.

Tasks take a ``key`` argument: the content fingerprint a flow computed, scoped to the store root. The cache
key is the task name + that key (never Prefect's default, run-scoped policy, which never hits across runs),
results are persisted, and the filesystem stays the source of truth: before calling a task the flow asks the
store whether its output is complete and, when it is not, refreshes the cache instead of trusting a cached
descriptor of files that are gone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from prefect.context import TaskRunContext

from tinyemo_core.config import RunConfig
from tinyemo_core.fingerprint import stable_hash
from tinyemo_core.provenance import recorded_as


def by_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache key = task name + the content fingerprint the flow computed for this call."""
    return f"{context.task.name}:{parameters['key']}"


CACHED = {"cache_key_fn": by_key, "persist_result": True}


def scoped(cfg: RunConfig, fingerprint: str) -> str:
    """A cache key: the content fingerprint scoped to this store root (a descriptor names files in it)."""
    return stable_hash(str(cfg.storage_root), fingerprint, length=24)


def run_cached(task, complete: bool, **kwargs) -> Any:
    """Call a cached task; when the store behind its key is incomplete, refresh the Prefect cache instead of
    trusting it."""
    return task.with_options(refresh_cache=not complete)(**kwargs)


def recorded(fn: Callable) -> Callable:
    """Run a task body with its Prefect run identity recorded into every store it writes."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from prefect.runtime import flow_run, task_run

        with recorded_as(flow=flow_run.flow_name, flow_run=flow_run.name, flow_run_id=flow_run.id,
                         task_run=task_run.name):  # fmt: skip
            return fn(*args, **kwargs)

    return wrapper
