"""Operations commands mounted on the ``tinyemo`` CLI: ``register(app)`` adds serve, deploy, deployments,
server, backbone and gc."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tinyemo_core.config import ConfigError

console = Console()
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="flows.yaml to read")]
ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help="profile in flows.yaml")]


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]{exc}[/red]")
    return typer.Exit(2)


OnlyOpt = Annotated[list[str] | None, typer.Option("--only", help="serve just these deployments")]
LimitOpt = Annotated[int | None, typer.Option(help="max concurrent flow runs in this process")]


def serve(config: ConfigOpt = Path("flows.yaml"), only: OnlyOpt = None, limit: LimitOpt = None) -> None:
    """Serve every flows.yaml deployment without a work pool from this process (Ctrl-C stops)."""
    from pipelines.deploy import serve as serve_all

    if not os.environ.get("PREFECT_API_URL"):
        console.print("[yellow]PREFECT_API_URL is not set: serving against a temporary local server. "
                      "Start one with `tinyemo server start` and export the URL it prints.[/yellow]")
    try:
        serve_all(config, only, limit)
    except ConfigError as exc:
        raise _fail(exc) from None


def deploy(config: ConfigOpt = Path("flows.yaml")) -> None:
    """Register the deployments that name a work_pool (run them with `prefect worker start --pool POOL`)."""
    from pipelines.deploy import deploy_to_pools

    try:
        names = deploy_to_pools(config)
    except (ConfigError, ValueError) as exc:
        raise _fail(exc) from None
    console.print("\n".join(names) if names else "no deployment in flows.yaml names a work_pool")


def deployments(config: ConfigOpt = Path("flows.yaml")) -> None:
    """List the deployments flows.yaml declares, by the stable names `prefect deployment run` takes."""
    from pipelines.deploy import describe_deployments

    try:
        rows = describe_deployments(config)
    except ConfigError as exc:
        raise _fail(exc) from None
    if not rows:
        console.print(f"no deployments in {config}")
        return
    table = Table(title=f"Deployments in {config}")
    for col in rows[0]:
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)


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
    from pipelines.server import start_server

    handle = start_server(host=host, port=port, ui=ui)
    console.print(f"Prefect server healthy at {handle.api_url} (pid {handle.pid}, home {handle.home})\n"
                  f"Point clients at it:  export PREFECT_API_URL={handle.api_url}")
    if ui:
        console.print(f"Dashboard: {handle.api_url.removesuffix('/api')}")


@server_app.command("stop")
def server_stop() -> None:
    """Stop the server `tinyemo server start` started."""
    from pipelines.server import stop_server

    console.print("stopped" if stop_server() else "no tinyemo server is running")


@server_app.command("status")
def server_status() -> None:
    """Show whether the recorded server answers."""
    from pipelines.server import running_server

    handle = running_server()
    console.print(f"running at {handle.api_url} (pid {handle.pid})" if handle else "not running")


backbone_app = typer.Typer(help="Language backbones added over time.", no_args_is_help=True)


@backbone_app.command("add")
def backbone_add(name_or_path: Annotated[str, typer.Argument(help="flows.yaml backbone, preset, local model "
                                                                   "folder or hub id")],
                 name: Annotated[str | None, typer.Option(help="registry name (default: derived)")] = None,
                 config: ConfigOpt = Path("flows.yaml"), profile: ProfileOpt = "demo") -> None:
    """Record the backbone and emit `tinyemo.backbone.added` (the backbone-added deployment reacts to it)."""
    from pipelines.backbones import add_backbone, registry_path

    try:
        backbone, spec, event = add_backbone(config, name_or_path, name, profile)
    except ConfigError as exc:
        raise _fail(exc) from None
    from tinyemo_core.config import load_config

    console.print(f"registered [bold]{backbone}[/bold] ({spec.source}) in "
                  f"{registry_path(load_config(config, profile).storage_root)}")
    if event is None:
        console.print("[yellow]no Prefect API to send the event to; run `tinyemo run backbone-added` yourself"
                      "[/yellow]")
    else:
        console.print(f"emitted {event.event} (id {event.id})")


@backbone_app.command("list")
def backbone_list(config: ConfigOpt = Path("flows.yaml"), profile: ProfileOpt = "demo") -> None:
    """Registered backbones and their evaluated accuracy with the profile's encoder."""
    from pipelines.backbones import comparison_rows, read_registry
    from tinyemo_core.config import load_config

    cfg = load_config(config, profile)
    rows = {r["backbone"]: r for r in comparison_rows(cfg.storage_root, cfg.encoder_name)}
    table = Table(title=f"Backbones ({cfg.encoder_name})")
    for col in ("backbone", "source", "held-in %", "zero-shot %"):
        table.add_column(col)
    specs = {**cfg.flows.backbones, **read_registry(cfg.storage_root)}
    for name, spec in specs.items():
        row = rows.get(name, {})
        table.add_row(name, spec.source, str(row.get("held_in_mean", "")), str(row.get("zero_shot_mean", "")))
    console.print(table)


def gc(config: ConfigOpt = Path("flows.yaml"), profile: ProfileOpt = "demo",
       apply: Annotated[bool, typer.Option("--apply", help="delete (default: only list)")] = False,
       min_age: Annotated[float, typer.Option(help="keep incomplete stores younger than this (hours)")] = 1.0,
       results: Annotated[Path | None, typer.Option(help="Prefect result folder (default: "
                                                         "PREFECT_LOCAL_STORAGE_PATH)")] = None) -> None:
    """Remove incomplete stores and Prefect result files no store needs (dry run unless --apply)."""
    from pipelines.maintenance import collect, remove
    from tinyemo_core.config import load_config

    cfg = load_config(config, profile)
    garbage = collect(cfg.storage_root, results, min_age_s=min_age * 3600)
    table = Table(title=("Removing" if apply else "Would remove (dry run; --apply deletes)"))
    for col in ("kind", "path", "size", "reason"):
        table.add_column(col)
    for g in garbage:
        table.add_row(g.kind, str(g.path), f"{g.size_bytes / 1e6:.2f} MB", g.reason)
    console.print(table if garbage else "nothing to collect")
    if apply and garbage:
        console.print(f"freed {remove(garbage) / 1e6:.2f} MB")


def register(app: typer.Typer) -> None:
    """Add the operations commands to the main ``tinyemo`` app."""
    app.command()(serve)
    app.command()(deploy)
    app.command()(deployments)
    app.command()(gc)
    app.add_typer(server_app, name="server")
    app.add_typer(backbone_app, name="backbone")


def main() -> None:
    """Standalone entry: ``python -m pipelines.ops_cli serve ...`` (same commands as ``tinyemo``)."""
    app = typer.Typer(help="tinyemo operations", no_args_is_help=True, pretty_exceptions_enable=False)
    register(app)
    app()


if __name__ == "__main__":
    main()
