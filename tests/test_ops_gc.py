"""`tinyemo gc`: incomplete stores and unneeded Prefect result files; dry run lists, --apply deletes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow as pa
from prefect.filesystems import LocalFileSystem
from prefect.results import ResultStore
from typer.testing import CliRunner

from pipelines.runtime.maintenance import collect, remove
from tinyemo_core.store.atomic import write_json, write_parquet

OLD = time.time() - 2 * 3600


def _age(path: Path) -> None:
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (OLD, OLD))


def _result(results: Path, key: str, value: object) -> Path:
    """A result record written the way Prefect writes task results (public ``ResultStore`` API)."""
    results.mkdir(parents=True, exist_ok=True)
    ResultStore(result_storage=LocalFileSystem(basepath=str(results))).write(value, key=key)
    return results / key


def _stores(root: Path) -> dict[str, Path]:
    table = pa.table({"image_id": ["a", "b"]})
    done = write_parquet(root / "manifests" / "ds" / "aaaa.parquet", table)
    write_json(done.with_suffix(".json"), {"rows": 2})
    half = write_parquet(root / "manifests" / "ds" / "bbbb.parquet", table)          # no .json: incomplete
    feat = root / "features" / "enc" / "ds"
    write_parquet(feat / "part-1.parquet", table)                                    # no _manifest.json
    fresh = write_parquet(root / "labels" / "bb" / "cccc.parquet", table)             # incomplete but new
    tmp = root / "runs" / ".x.tmp"
    tmp.parent.mkdir(parents=True)
    tmp.write_text("partial")
    for p in (half, feat, tmp):
        _age(p)
    return {"done": done, "half": half, "feat": feat, "fresh": fresh, "tmp": tmp}


def test_gc_dry_run_then_apply(tmp_path: Path) -> None:
    root, results = tmp_path / "storage", tmp_path / "results"
    results.mkdir()
    s = _stores(root)
    keep = _result(results, "ingest:1", {"manifest": str(s["done"]), "rows": 2})
    gone = _result(results, "ingest:2", {"manifest": str(root / "manifests/ds/zzzz.parquet")})
    shard_gone = _result(results, "extract-shard:part-9.parquet", {"name": "part-9.parquet", "rows": 2})
    shard_kept = _result(results, "extract-shard:part-1.parquet", {"name": "part-1.parquet", "rows": 2})
    junk = results / "evaluate:3"
    junk.write_bytes(b"not a record")

    garbage = collect(root, results, min_age_s=3600)
    assert {g.path for g in garbage} == {s["half"], s["feat"], s["tmp"], gone, shard_gone, junk}
    assert all(g.path.exists() for g in garbage)                    # collecting deletes nothing

    freed = remove(garbage)
    assert freed > 0 and not any(g.path.exists() for g in garbage)
    for kept in (s["done"], s["done"].with_suffix(".json"), s["fresh"], keep):
        assert kept.exists()
    # the features shard store was removed with its parts, so now its extract-shard result is unneeded too
    assert [g.path for g in collect(root, results, min_age_s=3600)] == [shard_kept]


def test_gc_cli_dry_run_default(tmp_path: Path) -> None:
    import typer
    import yaml

    from pipelines.cli.ops import register

    s = _stores(tmp_path / "storage")
    data = yaml.safe_load((Path(__file__).resolve().parent.parent / "flows.yaml").read_text())
    data["storage_root"] = str(tmp_path / "storage")
    config = tmp_path / "flows.yaml"
    config.write_text(yaml.safe_dump(data))
    app = typer.Typer()
    register(app)
    results = tmp_path / "results"   # never the project's own PREFECT_HOME results
    results.mkdir()
    gone = _result(results, "ingest:2", {"manifest": str(tmp_path / "nowhere.parquet")})
    env = {"COLUMNS": "300"}
    dry = CliRunner().invoke(app, ["gc", "--config", str(config), "--results", str(results)], env=env)
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output and s["half"].exists() and s["feat"].exists() and gone.exists()
    assert "ingest:2" in dry.output, dry.output
    cmd = ["gc", "--config", str(config), "--results", str(results), "--apply"]
    applied = CliRunner().invoke(app, cmd, env=env)
    assert applied.exit_code == 0, applied.output
    assert "freed" in applied.output and not s["half"].exists() and not s["feat"].exists()
    assert not gone.exists()
    assert s["done"].exists()
