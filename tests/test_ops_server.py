"""A real Prefect server on loopback, `tinyemo serve` in a subprocess, runs started by deployment name.

Proves: build-dataset/<demo deployment> completes through the Prefect CLI with its artifacts; the GPU tag
limit is created on serve; `backbone add` emits the event and the deployment trigger runs backbone-added,
which re-embeds and retrains without touching a feature file; everything started is stopped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipelines.runtime.gpu import GPU_TAG
from pipelines.runtime.server import ServerHandle, start_server, stop_pid
from tinyemo_core.config import FlowsFile

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def gpu_limit(tag: str) -> int | None:
    """The slots of the tag's concurrency limit on the current Prefect API (public client), or None."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return client.read_concurrency_limit_by_tag(tag).concurrency_limit
        except ObjectNotFound:
            return None


def _config(tmp: Path) -> Path:
    from conftest import write_small_config

    path = write_small_config(tmp, epochs=5)
    data = yaml.safe_load(path.read_text())
    fast = ["training.epochs=3"]
    data["deployments"] = {
        "demo": {"flow": "build-dataset", "profile": "demo", "tags": ["demo"], "overrides": fast},
        "new-backbone": {"flow": "backbone-added", "profile": "demo", "cron": "0 4 * * *", "overrides": fast,
                         "triggers": [{"expect": ["tinyemo.backbone.added"],
                                       "parameters": {"backbone": "{{ event.payload.backbone }}"}}]},
    }
    if "gpu" in FlowsFile.model_fields:  # once config.py carries the ops sections
        data["gpu"] = {"slots": 2}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.glob("features/**/*")}


def _wait_run(client, deployment_id, timeout: float):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
        if runs and runs[0].state is not None and runs[0].state.is_final():
            return runs[0]
        time.sleep(1.0)
    raise AssertionError(f"no finished run of deployment {deployment_id} within {timeout:.0f} s")


def _artifact_keys(client, flow_run_id) -> set[str]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    arts = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key for a in arts if a.key}


@pytest.fixture
def server(tmp_path: Path):
    handle: ServerHandle = start_server(home=tmp_path / "prefect-home", port=None, ui=False)
    yield handle
    handle.stop()


def test_serve_run_by_name_and_backbone_trigger(tmp_path: Path, server: ServerHandle) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings


    config = _config(tmp_path)
    env = {**os.environ, "PREFECT_API_URL": server.api_url, "PREFECT_HOME": str(server.home),
           "PREFECT_LOCAL_STORAGE_PATH": str(tmp_path / "results"), "PYTHONPATH": str(ROOT),
           "PREFECT_RUNNER_POLL_FREQUENCY": "1"}    # the served runner looks for new runs every second
    serve = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "serve", "--config", str(config)],
                             cwd=ROOT, env=env, stdout=open(tmp_path / "serve.log", "wb"),
                             stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as client:
            deadline = time.monotonic() + 60
            names = set()
            while time.monotonic() < deadline and len(names) < 2:
                assert serve.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                names = {f"{client.read_flow(d.flow_id).name}/{d.name}" for d in client.read_deployments()}
                time.sleep(1.0)
            assert names == {"build-dataset/demo", "backbone-added/new-backbone"}
            # created on serve from flows.yaml gpu.slots (default 1)
            assert gpu_limit(GPU_TAG) == (2 if "gpu" in FlowsFile.model_fields else 1)

            # a run started by stable name through the Prefect CLI itself
            cmd = [sys.executable, "-m", "prefect", "deployment", "run", "build-dataset/demo", "--watch",
                   "--watch-timeout", "150"]
            run = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=170)
            assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
            build = client.read_deployment_by_name("build-dataset/demo")
            flow_run = _wait_run(client, build.id, 10)
            assert flow_run.state.is_completed()
            assert {"ingest", "extract-pooled", "embed-labels", "train-projector", "evaluation"} <= \
                _artifact_keys(client, flow_run.id)
            storage = tmp_path / "storage"
            features = _snapshot(storage)
            assert features

            # the backbone-added deployment declares the event trigger and the cron re-check
            added = client.read_deployment_by_name("backbone-added/new-backbone")
            assert added.schedules and added.schedules[0].schedule.cron == "0 4 * * *"
            automations = client.read_automations_by_name(
                "backbone-added/new-backbone on tinyemo.backbone.added")
            assert automations and "tinyemo.backbone.added" in automations[0].trigger.expect

            cmd = [sys.executable, "-m", "pipelines.cli", "backbone", "add", "tiny-random-llama",
                   "--config", str(config)]
            add = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
            assert add.returncode == 0, add.stdout + add.stderr
            assert "emitted tinyemo.backbone.added" in add.stdout
            reacted = _wait_run(client, added.id, 120)
            assert reacted.state.is_completed(), reacted.state
            assert reacted.parameters["backbone"] == "tiny-random-llama"
            assert "backbone-comparison" in _artifact_keys(client, reacted.id)
        assert _snapshot(storage) == features                     # no image feature re-extracted or rewritten
        assert {p.name for p in (storage / "labels").iterdir()} == {"minilm", "tiny-random-llama"}
        assert any((storage / "runs").glob("demo-tiny-clip__tiny-random-llama__*/eval-*/report.json"))
    finally:
        stop_pid(serve.pid, timeout=20, process=serve)
    assert serve.poll() is not None
