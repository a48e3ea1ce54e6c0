"""Which run produced a store: a context the orchestrator sets around a step; store writers record it.

``tinyemo_core`` stays orchestrator-agnostic: pipelines set ``recorded_as(flow=..., flow_run=...)`` inside
each
Prefect task; a notebook call records ``{"by": "library call"}``.
"""

from __future__ import annotations

import getpass
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_CURRENT: ContextVar[dict[str, Any] | None] = ContextVar("tinyemo_provenance", default=None)


@contextmanager
def recorded_as(**info: Any) -> Iterator[None]:
    """Within this block, stores written record ``info`` as their producer."""
    token = _CURRENT.set({k: str(v) for k, v in info.items() if v is not None})
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current() -> dict[str, Any]:
    """The producer record for a store written now: the orchestrator's run identity, host, user, time."""
    base = _CURRENT.get() or {"by": "library call"}
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return {**base, "host": socket.gethostname(), "user": user, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def describe(record: dict[str, Any] | None) -> str:
    """One short line for listings: ``flow/run-name`` or how it was produced."""
    if not record:
        return ""
    if "flow_run" in record:
        return f"{record.get('flow', '?')}/{record['flow_run']}"
    return str(record.get("by", ""))
