"""Cheap, deterministic identities of model files for fingerprints (no model is ever loaded here)."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

_FILE_CACHE: dict[tuple[str, int, int], str] = {}
_CHUNK = 1 << 22


def hash_json(obj: Any) -> str:
    """sha256 of a canonical JSON dump (sorted keys) of ``obj``."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    """``<size>:<sha256>`` of a file, cached in-process by (path, size, mtime) so repeats are free."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _FILE_CACHE:
        h = hashlib.sha256()
        with p.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        _FILE_CACHE[key] = f"{st.st_size}:{h.hexdigest()}"
    return _FILE_CACHE[key]


def safetensors_header_identity(path: str | Path) -> str:
    """Size + sha256 of the safetensors JSON header (names, dtypes, shapes, offsets) - no tensor data read.

    Two checkpoints with the same header differ only in values; the backbone fingerprint pairs this with the
    hub revision or the user's own path, which is what makes it cheap for multi-GB files.
    """
    p = Path(path)
    with p.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = f.read(n)
    return f"{p.stat().st_size}:{hashlib.sha256(header).hexdigest()}"


def files_identity(paths: list[Path], *, full: bool) -> dict[str, str]:
    """Identity of each existing file by name: full content hash, or (for big weights) header hash."""
    out: dict[str, str] = {}
    for p in sorted(paths):
        if not p.is_file():
            continue
        if not full and p.suffix == ".safetensors":
            out[p.name] = safetensors_header_identity(p)
        else:
            out[p.name] = file_sha256(p)
    return out
