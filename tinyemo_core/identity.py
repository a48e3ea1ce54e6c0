"""What names a model (or any other file artifact) in a fingerprint: one identity per artifact kind.

- **A local file or model folder** is named by its CONTENT: every file's size + sha256 (a safetensors file's
  header is part of its bytes), never by its path, so a folder retrained in place gets a new identity and a
  copy under another path keeps it. Hashing a 7B folder takes a while, so each file's digest is cached by
  (resolved path, size, mtime in ns) in memory and in a persistent SQLite sidecar under the user cache folder
  (``$TINYEMO_CACHE_DIR``, else ``$XDG_CACHE_HOME/tinyemo``, else ``~/.cache/tinyemo``): later commands read
  the digest instead of the bytes. A rewritten file has a new mtime, so a stale digest is never used.
- **A hub id** is named by id + revision (pin a commit: ``main`` moves).
- **A served model** (an OpenAI-compatible endpoint) by the id it is asked for and what the server reports:
  tinyemo's own server reports the content identity of the folder it serves (then the endpoint does not
  matter); a server that reports only a path (vLLM's ``root``) is named by endpoint + that path, since the
  same path on two hosts can hold different weights.

Everything here is cheap to import (no torch, no transformers) and imports no other project module.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import struct
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

_CHUNK = 1 << 22
_MEMORY: dict[tuple[str, str, int, int], str] = {}
_LOCK = threading.Lock()
SIDECAR_NAME = "file-digests.sqlite"


def hash_json(obj: Any) -> str:
    """sha256 of a canonical JSON dump (sorted keys) of ``obj``."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


# --- the persistent digest cache --------------------------------------------------------------------------
def cache_dir() -> Path:
    """Where the digest sidecar lives (created on first write)."""
    if env := os.environ.get("TINYEMO_CACHE_DIR"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "tinyemo"


def sidecar_path() -> Path:
    return cache_dir() / SIDECAR_NAME


def _connect() -> sqlite3.Connection | None:
    """The sidecar database, or None where it cannot be used (read-only home, ...): then memory only."""
    try:
        path = sidecar_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=30)
        con.execute(
            "CREATE TABLE IF NOT EXISTS digests (kind TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT"
            " NULL, mtime_ns INTEGER NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (kind, path))"
        )
        return con
    except (OSError, sqlite3.Error):
        return None


def _sidecar_get(key: tuple[str, str, int, int]) -> str | None:
    con = _connect()
    if con is None:
        return None
    try:
        with con:
            row = con.execute(
                "SELECT digest FROM digests WHERE kind = ? AND path = ? AND size = ? AND mtime_ns = ?", key
            ).fetchone()
        return row[0] if row else None
    except sqlite3.Error:
        return None
    finally:
        con.close()


def _sidecar_put(key: tuple[str, str, int, int], digest: str) -> None:
    con = _connect()
    if con is None:
        return
    try:
        with con:  # one row per (kind, path): the digest of an older version of the file is replaced
            con.execute("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?)", (*key, digest))
    except sqlite3.Error:
        pass
    finally:
        con.close()


def cached_digest(path: str | Path, kind: str, compute: Callable[[Path], str]) -> str:
    """``compute(path)``, remembered by (kind, resolved path, size, mtime_ns) in memory and in the sidecar."""
    p = Path(path).resolve()
    st = p.stat()
    key = (kind, str(p), st.st_size, st.st_mtime_ns)
    if (hit := _MEMORY.get(key)) is not None:
        return hit
    digest = _sidecar_get(key)
    if digest is None:
        digest = compute(p)
        _sidecar_put(key, digest)
    with _LOCK:
        _MEMORY[key] = digest
    return digest


def forget_in_memory() -> None:
    """Drop the in-process digests (what a new command starts with); the sidecar stays."""
    with _LOCK:
        _MEMORY.clear()


# --- files ----------------------------------------------------------------------------------------------
def _digest_file(path: Path) -> str:
    """The one place a whole file's bytes are read for an identity."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return f"{path.stat().st_size}:{h.hexdigest()}"


def file_sha256(path: str | Path) -> str:
    """``<size>:<sha256>`` of a file's bytes (cached: see the module docstring)."""
    return cached_digest(path, "sha256", _digest_file)


def safetensors_header_identity(path: str | Path) -> str:
    """Size + sha256 of a safetensors file's JSON header (names, dtypes, shapes, offsets): no tensor read."""
    p = Path(path)
    with p.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = f.read(n)
    return f"{p.stat().st_size}:{hashlib.sha256(header).hexdigest()}"


def safetensors_tensor_sha256(path: str | Path, key: str) -> str:
    """sha256 of (name, dtype, shape, bytes) of ONE tensor of a safetensors file (cached per tensor name)."""

    def compute(p: Path) -> str:
        h = hashlib.sha256(key.encode())
        with p.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            meta = json.loads(f.read(n))[key]
            start, end = meta["data_offsets"]
            h.update(json.dumps([meta["dtype"], meta["shape"]]).encode())
            f.seek(8 + n + start)
            remaining = end - start
            while remaining > 0:
                chunk = f.read(min(remaining, _CHUNK))
                if not chunk:
                    raise ValueError(f"{p}: tensor {key!r} runs past the end of the file (truncated?)")
                h.update(chunk)
                remaining -= len(chunk)
        return h.hexdigest()

    return cached_digest(path, f"tensor:{key}", compute)


def files_identity(paths: Iterable[Path], *, full: bool) -> dict[str, str]:
    """Identity of each existing file by name: full content hash, or (big weights, ``full=False``) header."""
    out: dict[str, str] = {}
    for p in sorted(paths):
        if not p.is_file():
            continue
        if not full and p.suffix == ".safetensors":
            out[p.name] = safetensors_header_identity(p)
        else:
            out[p.name] = file_sha256(p)
    return out


# --- models -------------------------------------------------------------------------------------------------
def folder_files(folder: str | Path) -> list[Path]:
    """Every file of a model folder that is part of the model: hidden files and folders (``.cache/``,
    ``.git/``, editor droppings) are not."""
    root = Path(folder)

    def hidden(path: Path) -> bool:
        return any(part.startswith(".") for part in path.relative_to(root).parts)

    return sorted(p for p in root.rglob("*") if p.is_file() and not hidden(p))


def model_dir_identity(folder: str | Path) -> str:
    """Content identity of a model folder: sha256 over (relative name, size, sha256) of every file."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a model folder")
    return hash_json({str(p.relative_to(root)): file_sha256(p) for p in folder_files(root)})


def hub_identity(ref: str, revision: str | None) -> dict[str, Any]:
    """A hub id as it names a model: id + revision."""
    return {"hub": ref, "revision": revision}


def model_ref_identity(ref: str, revision: str | None = None) -> dict[str, Any]:
    """A model given by hub id or local path: a folder or file by content, anything else as a hub id."""
    p = Path(ref).expanduser()
    if p.is_dir():
        return {"folder": model_dir_identity(p)}
    if p.is_file():
        return {"file": file_sha256(p)}
    return hub_identity(ref, revision)


def local_model_fingerprint(folder: str | Path, **settings: Any) -> str:
    """16-hex name of a local model folder loaded with ``settings`` (chat format, dtype, ...)."""
    return hash_json({"folder": model_dir_identity(folder), "settings": settings})[:16]


def served_identity(
    endpoint: str, model: str, revision: str | None, reported: dict[str, Any], **settings: Any
) -> dict[str, Any]:
    """A model behind an OpenAI-compatible endpoint, from its ``/v1/models`` entry ``reported``.

    tinyemo's server reports ``tinyemo_fingerprint`` (the served folder's content identity): that names the
    model wherever it is served. Otherwise (vLLM) the reported ``root`` is a path on the server's host, so
    the endpoint is part of the identity."""
    ident: dict[str, Any] = {"backend": "openai", "model": model, "revision": revision}
    if content := reported.get("tinyemo_fingerprint"):
        ident["served"] = content
    else:
        ident["served"] = reported.get("root")
        ident["endpoint"] = endpoint.rstrip("/")
    ident.update({k: v for k, v in settings.items() if v is not None})
    return ident


__all__ = [
    "cache_dir",
    "cached_digest",
    "file_sha256",
    "files_identity",
    "folder_files",
    "forget_in_memory",
    "hash_json",
    "hub_identity",
    "local_model_fingerprint",
    "model_dir_identity",
    "model_ref_identity",
    "safetensors_header_identity",
    "safetensors_tensor_sha256",
    "served_identity",
    "sidecar_path",
]
