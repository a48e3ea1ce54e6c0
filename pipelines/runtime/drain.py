"""An orderly end for commands that run on Prefect's temporary (embedded) server.

Without a ``PREFECT_API_URL`` Prefect starts a temporary server subprocess and stops it at interpreter exit
(``atexit``). Task runs reach the server as client events that its task-run recorder writes to the database
one by one; when a flow ends, the events of its last task runs are still queued there. Stopping the server
then cancels the recorder in the middle of a write: it logs ``Error flushing 1 events`` with two
``CancelledError`` tracebacks per cancelled write, and those task runs are never recorded (the UI shows them
unfinished). :func:`drain_at_exit` registers, once per process, an exit hook that runs after Prefect has sent
its last events and before the temporary server stops (atexit runs hooks last-registered first): it waits
until the server has recorded every task run of this process's flow runs in a final state.
"""

from __future__ import annotations

import atexit
import threading
import time

_roots: set[str] = set()
_lock = threading.Lock()
_registered = False
FINAL = ("COMPLETED", "FAILED", "CANCELLED", "CRASHED")


def _temporary_server() -> bool:
    from prefect.settings import get_current_settings

    return not get_current_settings().api.url


def drain_at_exit(root_flow_run_id: str | None) -> None:
    """Remember this flow run tree and, on a temporary server, wait for its records before exit."""
    global _registered
    if not root_flow_run_id or not _temporary_server():
        return
    with _lock:
        _roots.add(str(root_flow_run_id))
        if not _registered:
            atexit.register(wait_until_recorded)
            _registered = True


def _tree(client, roots: list[str]) -> list:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    ids, frontier = list(roots), list(roots)
    while frontier:
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=frontier)))
        frontier = [str(r.id) for r in children if str(r.id) not in ids]
        ids += frontier
    return ids


def _pending(client, flow_runs: list[str], page: int = 200) -> tuple[int, int]:
    """(task runs recorded, of which not final) for ``flow_runs``."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flows = FlowRunFilter(id=FlowRunFilterId(any_=flow_runs))
    total = open_ = offset = 0
    while True:
        runs = client.read_task_runs(flow_run_filter=flows, limit=page, offset=offset)
        total += len(runs)
        open_ += sum(r.state is None or r.state.type.value not in FINAL for r in runs)
        if len(runs) < page:
            return total, open_
        offset += page


def wait_until_recorded(timeout: float = 30.0, interval: float = 0.1) -> bool:
    """Block until the server's task-run records of our flow runs are final and no longer growing (the
    recorder's queue is empty); True when drained, False on timeout (never raises at exit)."""
    from prefect.client.orchestration import get_client

    with _lock:
        roots = sorted(_roots)
    if not roots:
        return True
    try:
        with get_client(sync_client=True) as client:
            flow_runs = _tree(client, roots)
            deadline, last = time.monotonic() + timeout, None
            while time.monotonic() < deadline:
                now = _pending(client, flow_runs)
                if now[1] == 0 and now == last:
                    return True
                last = now
                time.sleep(interval)
    except Exception:  # noqa: BLE001 - the server may already be gone; exiting must not fail
        return False
    return False
