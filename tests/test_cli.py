"""The tinyemo CLI (typer) and the layering rule: tinyemo_core never imports Prefect."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from pipelines.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def test_core_library_does_not_import_prefect() -> None:
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / "tinyemo_core").rglob("*.py")
        if p.name != "__main__.py"
    )
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "bad = [m for m in sys.modules if m.split('.')[0] == 'prefect']\nassert not bad, bad\n"
    cmd = [sys.executable, "-c", code]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for path in (ROOT / "tinyemo_core").rglob("*.py"):
        assert "import prefect" not in path.read_text() and "from prefect" not in path.read_text(), path


def test_validate_reports_bad_field_by_path() -> None:
    args = ["validate", "--config", str(ROOT / "flows.yaml"), "--set", "training.epochs=0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "profiles.demo.training.epochs" in result.output


def test_validate_prints_resolved_profile() -> None:
    result = runner.invoke(
        app, ["validate", "--config", str(ROOT / "flows.yaml"), "--profile", "paper", "--config-only"]
    )
    assert result.exit_code == 0, result.output
    assert '"encoder_name": "clip-vit-l-14"' in result.output


def test_unknown_flow_is_rejected() -> None:
    result = runner.invoke(app, ["run", "no-such-flow", "--config", str(ROOT / "flows.yaml")])
    assert result.exit_code == 2 and "build-dataset" in result.output


def test_status_lists_incomplete_stores(small_config) -> None:
    config = small_config()
    storage = config.parent / "storage"
    (storage / "features" / "enc" / "ds").mkdir(parents=True)
    (storage / "features" / "enc" / "ds" / "part-x.parquet").write_bytes(b"partial")
    result = runner.invoke(app, ["status", "--config", str(config)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "enc/ds" in result.output and "no" in result.output


def test_listings_never_cut_names_and_speak_json(monkeypatch) -> None:
    """`tinyemo deployments` piped, in an 80-column terminal, and with --json: every full name survives."""
    import json

    from rich.console import Console

    from pipelines.cli import options
    from pipelines.runtime.deploy import describe_deployments

    names = [r["name"] for r in describe_deployments(ROOT / "flows.yaml")]
    assert any(len(n) > 25 for n in names)
    env = {"COLUMNS": "80"}
    piped = subprocess.run([sys.executable, "-m", "pipelines.cli", "deployments", "--config",
                            str(ROOT / "flows.yaml")], cwd=ROOT, capture_output=True, text=True, timeout=120,
                           env={**__import__("os").environ, **env})
    assert piped.returncode == 0, piped.stderr[-1000:]
    lines = piped.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines[1:]] == names  # a header, then one whole name per line
    result = runner.invoke(app, ["deployments", "--config", str(ROOT / "flows.yaml"), "--json"])
    assert [r["name"] for r in json.loads(result.output)] == names
    terminal = Console(force_terminal=True, width=80, record=True)
    monkeypatch.setattr(options, "console", terminal)
    options.print_rows(describe_deployments(ROOT / "flows.yaml"), title="Deployments")
    text = terminal.export_text()
    assert all(n in text for n in names), text
    for command in (["status"], ["gc"], ["backbone", "list"]):
        out = runner.invoke(app, [*command, "--config", str(ROOT / "flows.yaml"), "--json"])
        assert out.exit_code == 0, out.output
        assert isinstance(json.loads(out.output), list)
