"""Shared fixtures: offline environment, a Prefect test harness (one per session), small demo configs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# file digests (tinyemo_core.identity) are cached in a per-session folder, not the user's ~/.cache
os.environ.setdefault("TINYEMO_CACHE_DIR", tempfile.mkdtemp(prefix="tinyemo-digests-"))

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
    from tinyemo_core.config import write_scaled_demo

    return write_scaled_demo(ROOT / "flows.yaml", tmp, **{"epochs": 8, **training})


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    """Factory: family -> its tiny same-family checkpoint (tinyemo_core.tinymodels), built once a session."""
    from tinyemo_core.tinymodels import build_tiny

    root = tmp_path_factory.mktemp("tinymodels")
    return lambda family: build_tiny(family, root / family)
