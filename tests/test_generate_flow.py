"""The generate-qa Prefect flow end to end on 3 images with the in-process transformers backend."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from data_fixtures import write_flat_manifest

from tinyemo_core.generate.tiny_model import build_tiny_vlm


@pytest.mark.slow
def test_generate_qa_flow(prefect_harness: None, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    from pipelines.flows.generate_qa import generate_qa

    write_flat_manifest(tmp_path, ["joy", "fear", "awe"], name="m.parquet")
    spec = {
        "backend": "transformers",
        "model": str(build_tiny_vlm(tmp_path / "model")),
        "device": "cpu",
        "temperature": 0.0,
        "max_tokens": 4,
        "validation": {"reject_truncated": False, "require_question_mark": False},
    }
    args = dict(
        manifests=[str(tmp_path / "m.parquet")],
        spec=spec,
        out_dir=str(tmp_path / "out"),
        image_root=str(tmp_path),
        store_root=str(tmp_path / "gen"),
    )
    out = generate_qa(**args)
    assert out["report"]["sent"] == 15 and out["report"]["failed_total"] == 0
    assert out["export"]["stats"]["pretrain"]["train"]["records"] == 9
    records = json.loads((tmp_path / "out/emoreason_train.json").read_text())
    assert [r["id"] for r in records] == ["img00-emoreason", "img01-emoreason", "img02-emoreason"]
    assert generate_qa(**args)["report"]["cached"] == 15  # rerun: everything from the cache

    async def artifacts() -> dict:
        async with get_client() as client:
            found = await client.read_artifacts()
        return {a.key: a for a in found if a.key}

    arts = asyncio.run(artifacts())
    assert (
        arts["generate-qa-progress"].type == "progress" and float(arts["generate-qa-progress"].data) == 100.0
    )
    assert arts["generate-qa-summary"].type == "table"
