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


# Wiring size for the second half (generation, both stages, reasoning, evaluate-generated): the in-process
# tiny random VLM writes the instruction data, a few steps train, and evaluate-generated asks the random VLM
# (EmoVIT phrasings + CLIPScore). The real demo (flows.yaml) learns; tests/test_demo_learns.py runs that one.
WIRING_SECOND_HALF = """
generation: {backend: transformers, model: tiny, device: cpu, temperature: 0.0, datasets: [demo_webemo],
             max_tokens: 24, max_concurrency: 4, conditional: true, max_images: 20,
             validation: {reject_truncated: false, require_question_mark: false}}
evaluate_generated: {recipe: emovit, model: tiny, datasets: [demo_emoset, demo_synonyms], max_tokens: 24,
                     clipscore: {max_tokens: 32}}
reasoning:
  model: {tiny: {}}
  pretrain: {export: pretrain_train, max_records: 16,
             train: {learning_rate: 1.0e-3, max_steps: 3, per_device_train_batch_size: 4, save_steps: 2}}
  finetune: {export: emoreason_train, max_records: 16,
             train: {learning_rate: 2.0e-5, max_steps: 3, per_device_train_batch_size: 4, save_steps: 2}}
  reason: {max_images: 4, max_new_tokens: 48, batch_size: 4, compare_images: 2}
"""


def write_small_config(tmp: Path, **training) -> Path:
    """A copy of flows.yaml whose demo profile is small (fewer images, wiring-size second half) and stores
    under ``tmp``."""
    import yaml

    from tinyemo_core.config import write_scaled_demo

    path = write_scaled_demo(ROOT / "flows.yaml", tmp, **{"epochs": 8, **training})
    data = yaml.safe_load(path.read_text())
    from tinyemo_core.judge.prompts import EMOVIT_SENSITIVITY_INSTRUCTIONS

    second_half = yaml.safe_load(WIRING_SECOND_HALF)
    second_half["evaluate_generated"]["instructions"] = list(EMOVIT_SENSITIVITY_INSTRUCTIONS)  # §4.3.2
    data["profiles"]["demo"].update(second_half)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    """Factory: family -> its tiny same-family checkpoint (tinyemo_core.tinymodels), built once a session."""
    from tinyemo_core.tinymodels import build_tiny

    root = tmp_path_factory.mktemp("tinymodels")
    return lambda family: build_tiny(family, root / family)
