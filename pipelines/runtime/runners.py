"""Task runner chosen in flows.yaml (``task_runner:``): thread pool, Dask (local or a cluster), or Ray.

Pass the result to a flow with ``flow.with_options(task_runner=task_runner_from(spec))``; mapped shard tasks
then run wherever the runner puts them. Task parameters are small picklable descriptors, so any
runner works.
"""

from __future__ import annotations

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from tinyemo_core.ops_spec import TaskRunnerSpec


class RunnerUnavailable(RuntimeError):
    """The configured task runner's integration package is not installed."""


def task_runner_from(spec: TaskRunnerSpec | dict | None) -> TaskRunner:
    """Build the Prefect task runner a :class:`TaskRunnerSpec` describes (thread pool when ``None``)."""
    spec = TaskRunnerSpec.model_validate(spec or {})
    if spec.kind == "thread":
        return ThreadPoolTaskRunner(max_workers=spec.max_workers)
    if spec.kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as exc:
            raise RunnerUnavailable("task_runner.kind: dask needs prefect-dask: "
                                    "pip install prefect-dask") from exc
        if spec.address:
            return DaskTaskRunner(address=spec.address)
        kwargs: dict = {"threads_per_worker": spec.threads_per_worker, "processes": spec.processes,
                        "dashboard_address": None}
        if spec.max_workers:
            kwargs["n_workers"] = spec.max_workers
        return DaskTaskRunner(cluster_kwargs=kwargs)
    try:
        from prefect_ray import RayTaskRunner
    except ImportError as exc:
        raise RunnerUnavailable("task_runner.kind: ray needs prefect-ray: pip install prefect-ray") from exc
    return RayTaskRunner(address=spec.address) if spec.address else RayTaskRunner()
