"""Shared fixtures: offline environment, a Prefect test harness (one per session), small demo configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def prefect_harness():
    """A real (temporary, SQLite) Prefect API for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def small_config(tmp_path: Path):
    """Factory: write a small demo config under tmp_path and return its path."""
    return lambda **training: write_small_config(tmp_path, **training)


def write_small_config(tmp: Path, **training) -> Path:
    """A copy of flows.yaml whose demo profile is small and stores under ``tmp``."""
    data = yaml.safe_load((ROOT / "flows.yaml").read_text())
    data["storage_root"] = str(tmp / "storage")
    for spec in data["datasets"].values():
        if spec["root"].startswith("storage/"):
            spec["root"] = str(tmp / spec["root"])
    demo = data["profiles"]["demo"]
    demo["demo_data"]["images_per_class"] = 6
    demo["extraction"]["shard_size"] = 64
    demo["training"].update({"epochs": 8, **training})
    demo["evaluation"]["tsne"] = False
    path = tmp / "flows.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
