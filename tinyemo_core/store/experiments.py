"""Experiment tables: ``experiments/<name>-<fingerprint of inputs>/`` (Table III ablation, Table IV grid,
Table VII re-grounding). The same inputs land in the same folder; the JSON written last marks it complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyemo_core.fingerprint import stable_hash
from tinyemo_core.store.atomic import read_json

TABLE = "table.json"
REGROUNDING = "regrounding.json"


def experiment_dir(storage_root: Path, name: str, *inputs: Any) -> Path:
    """``experiments/<name>-<fingerprint of inputs>``."""
    return Path(storage_root) / "experiments" / f"{name}-{stable_hash(name, *inputs, length=12)}"


def read_regrounding(out_dir: Path) -> dict | None:
    """A finished re-grounding's ``regrounding.json``, or None."""
    return read_json(Path(out_dir) / REGROUNDING)


def regrounding_complete(out_dir: Path) -> bool:
    return (Path(out_dir) / REGROUNDING).exists()
