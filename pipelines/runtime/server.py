"""Start/stop a local Prefect server on loopback with the project's PREFECT_HOME; wait until it is healthy.

The server binds 127.0.0.1 unless told otherwise (nothing listens on a public address by default). Its pid and
URL are kept in ``<PREFECT_HOME>/tinyemo-server.json`` so ``tinyemo server stop`` finds it again; its log goes
to ``<PREFECT_HOME>/server.log``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from pipelines.runtime.env import PROJECT_ROOT
from tinyemo_core.net import free_port

STATE_FILE = "tinyemo-server.json"


@dataclass
class ServerHandle:
    """A running server: its process id, API URL (``http://127.0.0.1:4200/api``) and home folder."""

    pid: int
    api_url: str
    home: Path
    process: subprocess.Popen | None = None

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server and its children (it runs in its own process group)."""
        stop_pid(self.pid, timeout, self.process)
        (self.home / STATE_FILE).unlink(missing_ok=True)


def default_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME", PROJECT_ROOT / ".prefect"))


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def wait_healthy(api_url: str, timeout: float = 120.0, process: subprocess.Popen | None = None,
                 log: Path | None = None) -> None:
    """Poll ``/health`` until it answers 200; raise with the log's tail if the server dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if healthy(api_url):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"Prefect server exited with code {process.returncode}:\n{_tail(log)}")
        time.sleep(0.5)
    raise TimeoutError(f"Prefect server at {api_url} not healthy after {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path | None, lines: int = 30) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def start_server(home: Path | None = None, host: str = "127.0.0.1", port: int | None = 4200, ui: bool = True,
                 timeout: float = 120.0) -> ServerHandle:
    """Start ``prefect server start`` in the background and return once ``/health`` answers.

    ``port=None`` picks a free port (tests). A healthy server already recorded in ``home`` is reused.
    """
    home = Path(home or default_home())
    home.mkdir(parents=True, exist_ok=True)
    running = running_server(home)
    if running is not None:
        return running
    port = port or free_port(host)
    api_url = f"http://{host}:{port}/api"
    if healthy(api_url):
        raise RuntimeError(f"something already answers on {api_url}; pass another --port")
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_LOCAL_STORAGE_PATH": str(home / "results")}
    env.pop("PREFECT_API_URL", None)
    log = home / "server.log"
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port),
           "--ui" if ui else "--no-ui", "--analytics-off"]
    with open(log, "ab") as out:
        process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    handle = ServerHandle(process.pid, api_url, home, process)
    try:
        wait_healthy(api_url, timeout, process, log)
    except BaseException:
        handle.stop()
        raise
    (home / STATE_FILE).write_text(json.dumps({"pid": process.pid, "api_url": api_url}))
    return handle


def running_server(home: Path | None = None) -> ServerHandle | None:
    """The server recorded in ``home`` if it still answers, else ``None`` (a stale record is removed)."""
    home = Path(home or default_home())
    state = home / STATE_FILE
    if not state.exists():
        return None
    data = json.loads(state.read_text())
    if healthy(data["api_url"]):
        return ServerHandle(int(data["pid"]), data["api_url"], home)
    state.unlink(missing_ok=True)
    return None


def stop_server(home: Path | None = None) -> bool:
    """Stop the server recorded in ``home``; ``False`` when none was running."""
    handle = running_server(home)
    if handle is None:
        return False
    handle.stop()
    return True


def stop_pid(pid: int, timeout: float = 20.0, process: subprocess.Popen | None = None) -> None:
    """SIGTERM the process group led by ``pid`` (we started it with ``start_new_session``), then SIGKILL."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None:
            if process.poll() is not None:
                return
        else:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if process is not None:
        process.wait(timeout=5)
