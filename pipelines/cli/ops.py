"""Operations commands mounted on the ``tinyemo`` CLI: ``register(app)`` adds serve, deploy, deployments,
server, backbone and gc."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.options import ConfigOpt, JsonOpt, ProfileOpt, console, load, print_rows
from pipelines.cli.options import fail as _fail
from pipelines.runtime.maintenance import collect, remove
from tinyemo_core.config import ConfigError, load_config
from tinyemo_core.registry import backbones, registry_path

OnlyOpt = Annotated[list[str] | None, typer.Option("--only", help="serve just these deployments")]
LimitOpt = Annotated[int | None, typer.Option(help="max concurrent flow runs in this process")]


def serve(config: ConfigOpt = Path("flows.yaml"), only: OnlyOpt = None, limit: LimitOpt = None) -> None:
    """Serve every flows.yaml deployment without a work pool from this process (Ctrl-C stops)."""
    from pipelines.runtime.deploy import serve as serve_all

    if not os.environ.get("PREFECT_API_URL"):
        console.print("[yellow]PREFECT_API_URL is not set: serving against a temporary local server. "
                      "Start one with `tinyemo server start` and export the URL it prints.[/yellow]")
    try:
        serve_all(config, only, limit)
    except ConfigError as exc:
        raise _fail(exc) from None


def deploy(config: ConfigOpt = Path("flows.yaml")) -> None:
    """Register the deployments that name a work_pool (run them with `prefect worker start --pool POOL`)."""
    from pipelines.runtime.deploy import deploy_to_pools

    try:
        names = deploy_to_pools(config)
    except (ConfigError, ValueError) as exc:
        raise _fail(exc) from None
    console.print("\n".join(names) if names else "no deployment in flows.yaml names a work_pool")


def deployments(config: ConfigOpt = Path("flows.yaml"), as_json: JsonOpt = False) -> None:
    """List the deployments flows.yaml declares, by the stable names `prefect deployment run` takes."""
    from pipelines.runtime.deploy import describe_deployments

    try:
        rows = describe_deployments(config)
    except ConfigError as exc:
        raise _fail(exc) from None
    print_rows(rows, title=f"Deployments in {config}", as_json=as_json, empty=f"no deployments in {config}")


server_app = typer.Typer(help="A local Prefect server on 127.0.0.1 with the project's PREFECT_HOME "
                              "(`tinyemo server` alone = start).", invoke_without_command=True)


@server_app.callback()
def _server_default(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        server_start()


@server_app.command("start")
def server_start(port: Annotated[int, typer.Option(help="port on the host")] = 4200,
                 host: Annotated[str, typer.Option(help="bind address (0.0.0.0 exposes it: add a proxy with "
                                                        "auth first)")] = "127.0.0.1",
                 ui: Annotated[bool, typer.Option(help="serve the dashboard UI")] = True) -> None:
    """Start the server in the background and wait until it is healthy."""
    from pipelines.runtime.server import start_server

    handle = start_server(host=host, port=port, ui=ui)
    console.print(f"Prefect server healthy at {handle.api_url} (pid {handle.pid}, home {handle.home})\n"
                  f"Point clients at it:  export PREFECT_API_URL={handle.api_url}")
    if ui:
        console.print(f"Dashboard: {handle.api_url.removesuffix('/api')}")


@server_app.command("stop")
def server_stop() -> None:
    """Stop the server `tinyemo server start` started."""
    from pipelines.runtime.server import stop_server

    console.print("stopped" if stop_server() else "no tinyemo server is running")


@server_app.command("status")
def server_status() -> None:
    """Show whether the recorded server answers."""
    from pipelines.runtime.server import running_server

    handle = running_server()
    console.print(f"running at {handle.api_url} (pid {handle.pid})" if handle else "not running")


backbone_app = typer.Typer(help="Language backbones added over time.", no_args_is_help=True)


@backbone_app.command("add")
def backbone_add(name_or_path: Annotated[str, typer.Argument(help="flows.yaml backbone, preset, local model "
                                                                   "folder or hub id")],
                 name: Annotated[str | None, typer.Option(help="registry name (default: derived)")] = None,
                 config: ConfigOpt = Path("flows.yaml"), profile: ProfileOpt = "demo") -> None:
    """Record the backbone and emit `tinyemo.backbone.added` (the backbone-added deployment reacts to it)."""
    from pipelines.flows.backbone_added import add_backbone
    try:
        backbone, spec, event = add_backbone(config, name_or_path, name, profile)
    except ConfigError as exc:
        raise _fail(exc) from None

    console.print(f"registered [bold]{backbone}[/bold] ({spec.source}) in "
                  f"{registry_path(load_config(config, profile).storage_root)}")
    if event is None:
        console.print("[yellow]no Prefect API to send the event to; run `tinyemo run backbone-added` yourself"
                      "[/yellow]")
    else:
        console.print(f"emitted {event.event} (id {event.id})")


@backbone_app.command("list")
def backbone_list(config: ConfigOpt = Path("flows.yaml"), profile: ProfileOpt = "demo",
                  as_json: JsonOpt = False) -> None:
    """Known backbones (flows.yaml + registered) and their evaluated accuracy with the profile's encoder."""
    from pipelines.flows.backbone_added import comparison_rows
    cfg = load(config, profile)
    scores = {r["backbone"]: r for r in comparison_rows(cfg.storage_root, cfg.encoder_name)}
    rows = [{"backbone": name, "source": spec.source,
             "held_in_pct": scores.get(name, {}).get("held_in_mean"),
             "zero_shot_pct": scores.get(name, {}).get("zero_shot_mean")}
            for name, spec in backbones(cfg.flows, cfg.storage_root).items()]
    print_rows(rows, title=f"Backbones ({cfg.encoder_name})", as_json=as_json)


def gc(config: ConfigOpt = Path("flows.yaml"), profile: ProfileOpt = "demo",
       apply: Annotated[bool, typer.Option("--apply", help="delete (default: only list)")] = False,
       min_age: Annotated[float, typer.Option(help="keep incomplete stores younger than this (hours)")] = 1.0,
       results: Annotated[Path | None, typer.Option(help="Prefect result folder (default: "
                                                         "PREFECT_LOCAL_STORAGE_PATH)")] = None,
       as_json: JsonOpt = False) -> None:
    """Remove incomplete stores and Prefect result files no store needs (dry run unless --apply)."""
    cfg = load(config, profile)
    garbage = collect(cfg.storage_root, results, min_age_s=min_age * 3600)
    rows = [{"kind": g.kind, "path": str(g.path), "size_mb": round(g.size_bytes / 1e6, 2), "reason": g.reason}
            for g in garbage]
    print_rows(rows, title="Removing" if apply else "Would remove (dry run; --apply deletes)",
               as_json=as_json, empty="nothing to collect")
    if apply and garbage:
        freed = remove(garbage) / 1e6
        if not as_json:
            console.print(f"freed {freed:.2f} MB")


def register(app: typer.Typer) -> None:
    """Add the operations commands to the main ``tinyemo`` app."""
    app.command()(serve)
    app.command()(deploy)
    app.command()(deployments)
    app.command()(gc)
    app.add_typer(server_app, name="server")
    app.add_typer(backbone_app, name="backbone")
