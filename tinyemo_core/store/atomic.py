"""Atomic file writes: write to a temporary file, fsync, rename into place (``os.replace``).

Temporaries are named ``.<dest name>.<host>-<pid>.<random>.tmp`` so the writer can be identified later:
:func:`clear_stale_temporaries` removes those whose writer died (``kill -9``) without touching a live
writer's. A store may stage its temporaries in a folder a reader never looks at (``tmp_dir``); it must be on
the same filesystem as ``dest`` (a different one falls back to ``dest``'s folder).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from tinyemo_core.fingerprint import stable_hash

_HOST = stable_hash(socket.gethostname(), length=8)
_TMP = re.compile(r"\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")


def _tmp_folder(dest: Path, tmp_dir: Path | None) -> Path:
    if tmp_dir is None:
        return dest.parent
    tmp_dir.mkdir(parents=True, exist_ok=True)
    return tmp_dir if tmp_dir.stat().st_dev == dest.parent.stat().st_dev else dest.parent


@contextmanager
def atomic_path(dest: Path, tmp_dir: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path (next to ``dest`` or in ``tmp_dir``); on success it is fsynced and renamed
    onto ``dest`` (never half-written); on failure it is removed."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    folder = _tmp_folder(dest, Path(tmp_dir) if tmp_dir is not None else None)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.{_HOST}-{os.getpid()}.", suffix=".tmp", dir=folder)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, dest)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_atomic(dest: Path, writer: Callable[[Path], None], tmp_dir: Path | None = None) -> Path:
    """Run ``writer(tmp_path)`` and move the result onto ``dest`` atomically."""
    with atomic_path(dest, tmp_dir) as tmp:
        writer(tmp)
    return dest


def write_text(dest: Path, text: str, tmp_dir: Path | None = None) -> Path:
    """Atomically write UTF-8 text."""
    return write_atomic(dest, lambda p: p.write_text(text, encoding="utf-8"), tmp_dir)


def write_json(dest: Path, payload: Any, tmp_dir: Path | None = None, **dumps: Any) -> Path:
    """Atomically write JSON (pretty, sorted keys unless ``dumps`` overrides ``json.dumps`` options)."""
    options = {"indent": 2, "sort_keys": True, "default": str, **dumps}
    return write_text(dest, json.dumps(payload, **options), tmp_dir)


def write_parquet(dest: Path, table: pa.Table, compression: str | dict | None = "zstd",
                  tmp_dir: Path | None = None, **options: Any) -> Path:
    """Atomically write a Parquet table (``options`` go to ``pq.write_table``)."""
    return write_atomic(dest, lambda p: pq.write_table(table, p, compression=compression, **options), tmp_dir)


def write_arrow(dest: Path, table: pa.Table, tmp_dir: Path | None = None) -> Path:
    """Atomically write an uncompressed Arrow IPC file (memory-mappable, zero-copy to read)."""

    def write(p: Path) -> None:
        with pa.OSFile(str(p), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)

    return write_atomic(dest, write, tmp_dir)


def read_json(path: Path) -> Any | None:
    """Parse a JSON file, or None when it is missing or unreadable (an incomplete store)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@contextmanager
def staged_dir(dest: Path) -> Iterator[Path]:
    """Yield a hidden temporary sibling folder of ``dest``; when the block succeeds it replaces ``dest`` by
    rename, so ``dest`` is either the old folder or the whole new one (its marker file written last)."""
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    yield tmp
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_temporaries(folder: Path, max_age_s: float = 3600.0) -> list[Path]:
    """Temporaries in ``folder`` whose writer is gone: written on this host by a process that no longer
    exists, or (other host, foreign name) untouched for ``max_age_s``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now, out = time.time(), []
    for p in folder.glob(".*.tmp"):
        m = _TMP.search(p.name)
        try:
            if m and m["host"] == _HOST:
                dead = int(m["pid"]) != os.getpid() and not _alive(int(m["pid"]))
            else:
                dead = now - p.stat().st_mtime >= max_age_s
        except OSError:
            continue
        if dead and p.is_file():
            out.append(p)
    return out


def clear_stale_temporaries(folder: Path, max_age_s: float = 3600.0) -> list[Path]:
    """Remove :func:`stale_temporaries`; returns what was removed."""
    removed = []
    for p in stale_temporaries(folder, max_age_s):
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed
