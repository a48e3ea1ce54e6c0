"""flows.yaml ``deployments:`` -> Prefect deployments, served from one process or registered on a work pool.

Mapping (one entry ``deployments.<name>: {flow: F, profile: P, ...}``):

- Prefect deployment ``F/<name>`` (stable: ``prefect deployment run F/<name>`` starts it);
- parameters ``config`` (absolute path of this flows.yaml), ``profile``, ``overrides``, plus ``parameters``;
- tags ``tinyemo``, ``profile:P`` and the entry's ``tags``; ``cron`` -> a cron schedule; each ``triggers``
  item -> a ``DeploymentEventTrigger`` (an automation that runs the deployment when the event arrives);
- without ``work_pool``: served by ``tinyemo serve`` (``prefect.serve``) with the configured task runner;
  with ``work_pool``: registered by ``tinyemo deploy`` with a module entrypoint, run by ``prefect worker start
  --pool <pool>`` on a host where tinyemo is installed.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from pipelines.flows import flows as flow_registry
from pipelines.runtime.gpu import ensure_gpu_limit
from pipelines.runtime.runners import task_runner_from
from tinyemo_core.config import ConfigError, FlowsFile, load_config, load_flows
from tinyemo_core.ops_spec import DeploymentSpec


def ops_settings(config: str | Path) -> FlowsFile:
    """flows.yaml validated as a whole (``deployments``, ``task_runner`` and ``gpu`` included)."""
    return load_flows(Path(config))


def known_flows() -> dict[str, Any]:
    """Every deployable flow by Prefect name (the lead's registry plus ``backbone-added``)."""
    from pipelines.flows.backbone_added import backbone_added  # Prefect: imported when deploying

    return {**flow_registry(), backbone_added.name: backbone_added}


def deployment_name(spec: DeploymentSpec, name: str) -> str:
    """The stable full name ``<flow>/<deployment>`` used by ``prefect deployment run``."""
    return f"{spec.flow}/{name}"


def _triggers(spec: DeploymentSpec, full_name: str) -> list:
    from prefect.events import DeploymentEventTrigger

    return [DeploymentEventTrigger(name=f"{full_name} on {', '.join(t.expect)}", expect=set(t.expect),
                                   match=t.match, parameters=t.parameters or None, enabled=t.enabled,
                                   within=timedelta(seconds=t.within_s))
            for t in spec.triggers]


def to_runner_deployment(name: str, spec: DeploymentSpec, config: Path, flows: dict[str, Any],
                         task_runner=None, module_entrypoint: bool = False):
    """One flows.yaml entry as a Prefect ``RunnerDeployment`` (not yet applied)."""
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    if spec.flow not in flows:
        raise ConfigError(f"deployments.{name}.flow: unknown flow {spec.flow!r} (known: {', '.join(flows)})")
    fl = flows[spec.flow]
    if task_runner is not None:
        fl = fl.with_options(task_runner=task_runner)
    full = deployment_name(spec, name)
    params = {"config": str(config), "profile": spec.profile, "overrides": list(spec.overrides),
              **spec.parameters}
    return fl.to_deployment(
        name=name, parameters=params, tags=["tinyemo", f"profile:{spec.profile}", *spec.tags],
        description=spec.description or f"{spec.flow} with profile {spec.profile} ({config})",
        schedules=[Cron(spec.cron, timezone=spec.timezone)] if spec.cron else None,
        triggers=_triggers(spec, full), paused=spec.paused, concurrency_limit=spec.concurrency_limit,
        work_pool_name=spec.work_pool if module_entrypoint else None,
        work_queue_name=spec.work_queue if module_entrypoint else None,
        entrypoint_type=EntrypointType.MODULE_PATH if module_entrypoint else EntrypointType.FILE_PATH)


def _check_profiles(config: Path, ops: FlowsFile) -> None:
    for name, spec in ops.deployments.items():
        try:
            load_config(config, spec.profile, spec.overrides)
        except ConfigError as exc:
            raise ConfigError(f"deployments.{name} (profile {spec.profile}): {exc}") from None


def served_deployments(config: str | Path, only: list[str] | None = None) -> list:
    """RunnerDeployments for entries without ``work_pool`` (or just ``only``), with the task runner set."""
    config = Path(config).resolve()
    ops = ops_settings(config)
    _check_profiles(config, ops)
    flows = known_flows()
    runner = task_runner_from(ops.task_runner)
    picked = {n: s for n, s in ops.deployments.items() if s.work_pool is None and (only is None or n in only)}
    if only:
        unknown = sorted(set(only) - set(picked))
        if unknown:
            raise ConfigError(f"deployments {unknown}: not in {config} (or bound to a work pool)")
    return [to_runner_deployment(n, s, config, flows, task_runner=runner) for n, s in picked.items()]


def serve(config: str | Path, only: list[str] | None = None, limit: int | None = None) -> None:
    """``tinyemo serve``: set up the GPU concurrency limit, then serve the deployments until interrupted."""
    from prefect import serve as prefect_serve

    deployments = served_deployments(config, only)
    if not deployments:
        raise ConfigError(f"{config}: no deployments to serve; add entries under `deployments:`")
    ensure_gpu_limit(ops_settings(config).gpu)
    prefect_serve(*deployments, limit=limit, print_starting_message=True)


def deploy_to_pools(config: str | Path) -> list[str]:
    """``tinyemo deploy``: register entries with ``work_pool`` (workers import the flows by module path)."""
    from prefect import deploy as prefect_deploy

    config = Path(config).resolve()
    ops = ops_settings(config)
    _check_profiles(config, ops)
    flows = known_flows()
    pools: dict[str, list] = {}
    names = []
    for name, spec in ops.deployments.items():
        if spec.work_pool:
            pools.setdefault(spec.work_pool, []).append(
                to_runner_deployment(name, spec, config, flows, module_entrypoint=True))
            names.append(deployment_name(spec, name))
    if pools:
        ensure_gpu_limit(ops.gpu)
    for pool, deployments in pools.items():
        prefect_deploy(*deployments, work_pool_name=pool, build=False, push=False,
                       print_next_steps_message=False, ignore_warnings=True)
    return names


def describe_deployments(config: str | Path) -> list[dict[str, Any]]:
    """Rows for ``tinyemo deployments``: the stable name and how each entry runs."""
    ops = ops_settings(config)
    return [{"name": deployment_name(s, n), "profile": s.profile, "tags": ", ".join(s.tags),
             "schedule": s.cron or "", "triggers": "; ".join(", ".join(t.expect) for t in s.triggers),
             "runs on": f"work pool {s.work_pool}" if s.work_pool else "tinyemo serve"}
            for n, s in ops.deployments.items()]
