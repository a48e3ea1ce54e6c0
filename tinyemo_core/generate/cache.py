"""Per-request answer cache: append-only JSONL shards with a checksum on every line.

Layout: ``<root>/<generator>/<dataset>/part-<time>-<pid>-<rand>.jsonl``. Each writer appends to its own new
shard (no two processes share a file), flushes every line and fsyncs every ``fsync_every`` lines and on
close. A line killed mid-write fails to parse or fails its checksum and is ignored on read, so it is simply
re-requested. When a key appears more than once (a failed answer retried), the latest line wins.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .backends.base import ChatRequest


def request_key(fingerprint: str, image_id: str, request: ChatRequest) -> str:
    """sha256 of (generator fingerprint, image_id, full prompt turns, sampling parameters)."""
    ident = {
        "generator": fingerprint,
        "image_id": image_id,
        "turns": [[t.role, t.text] for t in request.turns],
        "has_image": request.image_path is not None,
        "sampling": request.sampling.model_dump(),
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _checksum(key: str, rec: dict[str, Any]) -> str:
    body = json.dumps([key, rec], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:16]


class GenerationCache:
    """The cached answers of one (generator, dataset); load once, then ``get``/``put``."""

    def __init__(self, directory: str | Path, *, fsync_every: int = 64) -> None:
        self.dir = Path(directory)
        self.fsync_every = fsync_every
        self.records: dict[str, dict[str, Any]] = {}
        self.corrupt_lines = 0
        self._fh = None
        self._unsynced = 0
        self.reload()

    def shards(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.jsonl"))

    def reload(self) -> None:
        """(Re)read every shard; invalid or partial lines are counted in ``corrupt_lines`` and skipped."""
        self.records, self.corrupt_lines = {}, 0
        for shard in self.shards():
            for key, rec in self._read(shard):
                self.records[key] = rec

    def _read(self, shard: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        with shard.open("rb") as fh:
            for raw in fh:
                try:
                    line = json.loads(raw)
                    key, rec, crc = line["key"], line["rec"], line["crc"]
                    if not raw.endswith(b"\n") or _checksum(key, rec) != crc:
                        raise ValueError("checksum")
                except (ValueError, KeyError, TypeError):
                    self.corrupt_lines += 1
                    continue
                yield key, rec

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def __len__(self) -> int:
        return len(self.records)

    def put(self, key: str, rec: dict[str, Any]) -> None:
        """Append one record (flushed at once; fsynced every ``fsync_every`` records)."""
        if self._fh is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            name = (
                f"part-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**9:09d}-{os.getpid()}-"
                f"{secrets.token_hex(3)}.jsonl"
            )
            self._fh = (self.dir / name).open("ab")
        line = {"key": key, "rec": rec, "crc": _checksum(key, rec)}
        self._fh.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
        self._fh.flush()
        self.records[key] = rec
        self._unsynced += 1
        if self._unsynced >= self.fsync_every:
            os.fsync(self._fh.fileno())
            self._unsynced = 0

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def compact(self) -> Path | None:
        """Rewrite the latest record per key into one fsynced shard renamed into place; drop the old shards.

        Run only while no other process writes to this directory.
        """
        self.close()
        old = self.shards()
        if not old:
            return None
        target = (
            self.dir / f"part-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**9:09d}-compact.jsonl"
        )
        tmp = target.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            for key, rec in self.records.items():
                line = {"key": key, "rec": rec, "crc": _checksum(key, rec)}
                fh.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        for shard in old:
            shard.unlink()
        return target

    def __enter__(self) -> GenerationCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
