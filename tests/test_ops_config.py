"""Operations config: flows.yaml deployments -> RunnerDeployments, task runners, GPU tags, registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prefect.events import DeploymentEventTrigger
from prefect.task_runners import ThreadPoolTaskRunner

from pipelines.flows.backbone_added import TRIGGER
from pipelines.runtime.deploy import describe_deployments, known_flows, ops_settings, to_runner_deployment
from pipelines.runtime.gpu import gpu_tags
from pipelines.runtime.runners import task_runner_from
from tinyemo_core.config import ConfigError, load_config, load_flows
from tinyemo_core.encoders.specs import BackboneSpec
from tinyemo_core.monitor import DeviceMonitor, device_name
from tinyemo_core.ops_spec import DeploymentSpec, TaskRunnerSpec
from tinyemo_core.registry import (
    UnknownModel,
    backbone_spec,
    read_registry,
    record_backbone,
    resolve_backbone,
)

ROOT = Path(__file__).resolve().parent.parent


def _write(tmp: Path, deployments: dict) -> Path:
    data = yaml.safe_load((ROOT / "flows.yaml").read_text())
    data["deployments"] = deployments
    path = tmp / "flows.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_bad_fields_are_named_by_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"deployments\.demo\.cron"):
        ops_settings(_write(tmp_path, {"demo": {"flow": "build-dataset", "cron": "every day"}}))
    with pytest.raises(ConfigError, match=r"deployments\.demo\.colour"):
        ops_settings(_write(tmp_path, {"demo": {"flow": "build-dataset", "colour": "red"}}))
    with pytest.raises(ValueError, match="max_workers"):
        TaskRunnerSpec(kind="dask", max_workers=0)
    with pytest.raises(ValueError, match="kind"):
        TaskRunnerSpec.model_validate({"kind": "celery"})
    with pytest.raises(ConfigError, match=r"deployments\.bad name"):
        ops_settings(_write(tmp_path, {"bad name": {"flow": "build-dataset"}}))


def test_repo_flows_yaml_deployments_validate() -> None:
    ops = ops_settings(ROOT / "flows.yaml")
    assert ops.deployments and all(s.flow in known_flows() for s in ops.deployments.values())


def test_deployment_mapping(tmp_path: Path) -> None:
    spec = DeploymentSpec(flow="backbone-added", profile="demo", overrides=["training.epochs=2"],
                          tags=["nightly"], cron="0 4 * * *", triggers=[TRIGGER],
                          parameters={"backbone": None})
    config = _write(tmp_path, {"bb": spec.model_dump()})
    dep = to_runner_deployment("bb", spec, config, known_flows(), task_runner=ThreadPoolTaskRunner(2))
    assert dep.name == "bb" and dep.flow_name == "backbone-added"
    assert dep.parameters == {"config": str(config), "profile": "demo", "overrides": ["training.epochs=2"],
                              "backbone": None}
    assert set(dep.tags) == {"tinyemo", "profile:demo", "nightly"}
    assert dep.schedules[0].schedule.cron == "0 4 * * *"
    (trigger,) = dep.triggers
    assert isinstance(trigger, DeploymentEventTrigger)
    assert trigger.expect == {"tinyemo.backbone.added"}
    assert trigger.parameters == {"backbone": "{{ event.payload.backbone }}"}
    rows = describe_deployments(config)
    assert rows[0]["name"] == "backbone-added/bb" and rows[0]["runs on"] == "tinyemo serve"
    with pytest.raises(ConfigError, match=r"deployments\.x\.flow: unknown flow"):
        to_runner_deployment("x", DeploymentSpec(flow="nope"), config, known_flows())


def test_work_pool_deployment_uses_module_entrypoint(tmp_path: Path) -> None:
    spec = DeploymentSpec(flow="build-dataset", work_pool="gpu", work_queue="a100")
    dep = to_runner_deployment("gpu", spec, tmp_path / "flows.yaml", known_flows(), module_entrypoint=True)
    assert dep.entrypoint == "pipelines.flows.build_dataset.build_dataset"
    assert dep.work_pool_name == "gpu" and dep.work_queue_name == "a100"


def test_task_runner_from_spec() -> None:
    from prefect_dask import DaskTaskRunner

    assert isinstance(task_runner_from(None), ThreadPoolTaskRunner)
    three = task_runner_from({"kind": "thread", "max_workers": 3})
    assert isinstance(three, ThreadPoolTaskRunner) and three._max_workers == 3
    local = task_runner_from({"kind": "dask", "max_workers": 2})
    assert isinstance(local, DaskTaskRunner) and local.cluster_kwargs["n_workers"] == 2
    remote = task_runner_from(TaskRunnerSpec(kind="dask", address="tcp://10.0.0.5:8786"))
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://10.0.0.5:8786"
    try:
        import prefect_ray  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="pip install prefect-ray"):
            task_runner_from({"kind": "ray"})


def test_gpu_tags_and_cpu_monitoring() -> None:
    import torch

    assert gpu_tags("cpu") == [] and gpu_tags("cuda:1") == ["tinyemo-gpu"]
    assert gpu_tags("auto") == (["tinyemo-gpu"] if torch.cuda.is_available() else [])
    with DeviceMonitor(interval_s=0.05) as mon:
        pass
    summary = mon.summary()
    if not torch.cuda.is_available():
        assert device_name() == "cpu" and summary["device"] == "cpu" and summary["peak_gpu_memory_mb"] is None


def test_backbone_resolution_and_registry(tmp_path: Path) -> None:
    flows = load_flows(ROOT / "flows.yaml")
    assert resolve_backbone("tiny-random-llama", flows)[1] == flows.backbones["tiny-random-llama"]
    model = tmp_path / "My Model"
    model.mkdir()
    assert resolve_backbone(str(model), flows) == ("my-model", BackboneSpec(source=str(model)))
    assert resolve_backbone("Qwen/Qwen2-0.5B", flows)[0] == "qwen2-0.5b"
    with pytest.raises(ConfigError, match="known names"):
        resolve_backbone("no-such-thing", flows)

    record_backbone(tmp_path, "my-model", BackboneSpec(source=str(model)))
    record_backbone(tmp_path, "tiny", BackboneSpec(source="random:t", random_config={"hidden_size": 32}))
    registry = read_registry(tmp_path)
    assert set(registry) == {"my-model", "tiny"} and registry["tiny"].random_config == {"hidden_size": 32}
    # one resolution: flows.yaml names first, then the registry; a profile may name a registered backbone
    assert backbone_spec(flows, "minilm", tmp_path) == flows.backbones["minilm"]
    assert backbone_spec(flows, "tiny", tmp_path) == registry["tiny"]
    with pytest.raises(UnknownModel, match="tinyemo backbone add"):
        backbone_spec(flows, "unknown", tmp_path)
    config = tmp_path / "flows.yaml"
    data = yaml.safe_load((ROOT / "flows.yaml").read_text())
    config.write_text(yaml.safe_dump({**data, "storage_root": str(tmp_path)}))
    cfg = load_config(config, "demo", ["backbone=tiny"])
    assert cfg.backbone_name == "tiny" and cfg.backbone == registry["tiny"]
