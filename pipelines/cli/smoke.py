"""``tinyemo run FLOW --profile P --smoke``: the profile on generated data and tiny same-family models
(:mod:`tinyemo_core.smoke`), with any served model started on loopback for the length of the run."""

from __future__ import annotations

import contextlib

from pipelines.cli.options import console, fail, load
from tinyemo_core import smoke as smoke_runs
from tinyemo_core.config import ConfigError, RunConfig


def enter_smoke(stack: contextlib.ExitStack, cfg: RunConfig, flow: str,
                overrides: list[str]) -> tuple[RunConfig, list[str]]:
    """Prepare the smoke copy of ``cfg``'s profile, start its servers inside ``stack``; return the smoke
    profile (its overrides are already applied)."""
    try:
        plan = smoke_runs.prepare(cfg, overrides, flow)
    except ConfigError as exc:
        raise fail(exc) from None
    console.print(f"[bold]smoke run[/bold]: {len(plan.replaced)} model(s) replaced by tiny same-family "
                  f"models, data generated under {plan.root} ({plan.root / 'replaced.json'})")
    if plan.servers:
        from tinyemo_core.generate.server import launch_server

        for server in plan.servers:
            try:
                stack.enter_context(launch_server(server.folder, served_name=server.served_name,
                                                  port=server.port, startup_timeout_s=600))
            except (RuntimeError, TimeoutError) as exc:
                raise fail(f"smoke run: the tiny server standing in for {server.served_name!r} did not "
                           f"start ({exc})") from None
    return load(plan.config_path, cfg.profile, []), []
