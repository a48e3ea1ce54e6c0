"""`tinyemo migrate-stores`: the dry run lists format-1 stores and touches nothing; the real run rewrites
them in place; a second run has nothing left to do."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from test_store_v2 import _snapshot, _write
from typer.testing import CliRunner

from pipelines.cli import app
from tinyemo_core.store.features import FeatureStore

ROOT = Path(__file__).resolve().parent.parent


def test_migrate_stores_cli(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "flows.yaml").read_text())
    data["storage_root"] = str(tmp_path / "storage")
    config = tmp_path / "flows.yaml"
    config.write_text(yaml.safe_dump(data))
    store = FeatureStore(tmp_path / "storage" / "features" / "enc" / "ds", "enc")
    before, _ = _write(store, legacy=True)
    snap = _snapshot(tmp_path / "storage")
    runner = CliRunner()
    dry = runner.invoke(app, ["migrate-stores", "--dry-run", "--json", "--config", str(config)])
    assert dry.exit_code == 0, dry.output
    assert [r["path"] for r in json.loads(dry.output)] == [str(store.root)]
    assert _snapshot(tmp_path / "storage") == snap
    done = runner.invoke(app, ["migrate-stores", "--json", "--config", str(config)])
    assert json.loads(done.output)[0]["migrated"] is True
    assert store.manifest()["content_hash"] == before["content_hash"]  # nothing downstream recomputes
    again = runner.invoke(app, ["migrate-stores", "--config", str(config)])
    assert again.exit_code == 0 and "already format 2" in " ".join(again.output.split())
