"""Project-local Prefect settings, applied before Prefect is imported (embedded SQLite, no telemetry,
offline)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def configure_environment(project_root: Path = PROJECT_ROOT) -> None:
    """Default PREFECT_HOME to ``<project>/.prefect`` and switch off analytics and hub downloads.

    Values the user already exported win, so ``PREFECT_API_URL`` pointing at a team server is respected.
    """
    home = project_root / ".prefect"
    defaults = {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOCAL_STORAGE_PATH": str(home / "results"),
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
