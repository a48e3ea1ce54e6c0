"""Typed operations settings of flows.yaml: Prefect deployments, the task runner, GPU gating.

Plain pydantic (no Prefect import): ``pipelines.runtime.deploy`` / ``pipelines.runtime.runners`` /
``pipelines.runtime.gpu`` turn these into Prefect objects. A bad field is reported by its path
(``deployments.demo.cron: ...``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class TriggerSpec(BaseModel):
    """Run the deployment when a Prefect event arrives (becomes a ``DeploymentEventTrigger``).

    ``parameters`` values may be Jinja templates over the event, e.g. ``"{{ event.payload.backbone }}"``.
    """

    model_config = ConfigDict(extra="forbid")

    expect: list[str] = Field(min_length=1)              # event names, e.g. [tinyemo.backbone.added]
    match: dict[str, str | list[str]] = {}              # resource labels the event must carry
    parameters: dict[str, Any] = {}                     # merged over the deployment's parameters
    within_s: int = Field(0, ge=0)                       # reactive triggers fire on each event when 0
    enabled: bool = True


class DeploymentSpec(BaseModel):
    """One Prefect deployment: ``<flow>/<deployment name>``; served by ``tinyemo serve`` or, with
    ``work_pool`` set, registered on that work pool for ``prefect worker start --pool``."""

    model_config = ConfigDict(extra="forbid")

    flow: str = Field(min_length=1)                      # a Prefect flow name: build-dataset, backbone-added
    profile: str = "demo"
    overrides: list[str] = []                            # --set KEY=VALUE items applied at run time
    tags: list[str] = []
    description: str | None = None
    cron: str | None = None                              # e.g. "0 3 * * *" (server's timezone: UTC)
    timezone: str = "UTC"
    triggers: list[TriggerSpec] = []
    work_pool: str | None = None                         # None: served by `tinyemo serve`
    work_queue: str | None = None
    parameters: dict[str, Any] = {}                      # extra flow parameters (e.g. backbone)
    concurrency_limit: int | None = Field(None, gt=0)    # at most N runs of this deployment at once
    paused: bool = False

    @field_validator("cron")
    @classmethod
    def _cron_fields(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) not in (5, 6):
            raise ValueError(f"{value!r} is not a cron expression (5 fields: minute hour day month weekday)")
        return value


class TaskRunnerSpec(BaseModel):
    """Where a flow's mapped tasks run: threads (default), a Dask cluster, or a Ray cluster."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["thread", "dask", "ray"] = "thread"
    max_workers: int | None = Field(None, gt=0)          # threads, or local Dask workers; None = default
    threads_per_worker: int = Field(1, gt=0)             # local Dask only
    processes: bool = True                               # local Dask: worker processes (True) or threads
    address: str | None = None                           # an existing Dask scheduler / Ray cluster address


class GpuSpec(BaseModel):
    """GPU gating: tasks tagged ``tag`` share ``slots`` concurrent runs across every flow on one server."""

    model_config = ConfigDict(extra="forbid")

    slots: int = Field(1, gt=0)                          # one GPU-bound task per GPU by default
    tag: str = Field("tinyemo-gpu", pattern=NAME_PATTERN)
