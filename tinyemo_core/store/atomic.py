"""Atomic file writes: write to a temporary name in the same folder, fsync, rename into place."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; on success it is renamed onto ``dest`` (never
    half-written)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, dest)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_atomic(dest: Path, writer: Callable[[Path], None]) -> Path:
    """Run ``writer(tmp_path)`` and move the result onto ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        writer(tmp)
    return dest


def write_json(dest: Path, payload: Any) -> Path:
    """Atomically write pretty JSON."""
    return write_atomic(
        dest, lambda p: p.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    )


def write_parquet(dest: Path, table: pa.Table, compression: str | None = "zstd") -> Path:
    """Atomically write a Parquet table."""
    return write_atomic(dest, lambda p: pq.write_table(table, p, compression=compression))


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
