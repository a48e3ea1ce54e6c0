"""Hostile input gets a defined outcome and the run continues: non-UTF-8 file names and FIFOs named *.jpg
are quarantined with a reason (no crash, no hang, no temp file left), and a generated answer containing the
literal `<image>` costs that answer only."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import data_fixtures as fx
import pytest

from tinyemo_core.config import DatasetSpec
from tinyemo_core.data.images import NOT_A_FILE, inspect_image
from tinyemo_core.data.ingest import NOT_UTF8, build_manifest
from tinyemo_core.stages import ingest

LATIN1 = b"caf\xe9_tristesse.jpg"  # a latin-1 name from an old zip archive: not valid UTF-8


def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def _with_timeout(fn, seconds: float = 20.0):
    """Run ``fn`` in a thread; a hang fails the test instead of blocking the suite forever."""
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(value=fn()), daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        pytest.fail(f"still running after {seconds} s (blocked on a FIFO?)")
    return out["value"]


def test_fifo_is_quarantined_without_reading(tmp_path: Path) -> None:
    fifo = _fifo(tmp_path / "d" / "x.jpg")
    check = _with_timeout(lambda: inspect_image(fifo, tmp_path))
    assert check.status == "quarantined" and check.error.startswith(f"{NOT_A_FILE}: ")
    assert "is a FIFO" in check.error


@pytest.mark.skipif(os.uname().sysname == "Darwin", reason="macOS file systems refuse non-UTF-8 names")
def test_ingest_survives_latin1_names_and_fifos(tmp_path: Path) -> None:
    root = tmp_path / "e6"
    fx.make_emotion6(root, per_class=4)
    with open(os.path.join(os.fsencode(root / "images" / "joy"), LATIN1), "wb") as fh:
        fh.write(fx.image_bytes(seed=77))
    _fifo(root / "images" / "fear" / "pipe.jpg")
    spec = DatasetSpec(layout="emotion6", root=root)
    storage = tmp_path / "storage"
    out = _with_timeout(lambda: ingest.ingest("e6", spec, storage, ingest.ingest_fingerprint("e6", spec),
                                              workers=2, progress=False))
    q = out["counts"]["quarantined"]
    assert q == {NOT_UTF8: 1, NOT_A_FILE: 1} and out["counts"]["ok"] == 12  # the run continued
    import pyarrow.parquet as pq

    rows = {r["path"]: r for r in pq.read_table(out["manifest"]).to_pylist()}
    bad = rows["images/joy/caf\\xe9_tristesse.jpg"]  # escaped, displayable, UTF-8
    assert bad["status"] == "quarantined" and bad["error"].startswith(NOT_UTF8) and bad["image_id"] is None
    assert rows["images/fear/pipe.jpg"]["error"].startswith(NOT_A_FILE)
    split_file = storage / "splits" / "e6.json"
    assigned = json.loads(split_file.read_text(encoding="utf-8"))["assignments"]
    assert len(assigned) == 13 and not any("caf" in k for k in assigned)  # the bad name is never persisted
    assert [p.name for p in split_file.parent.iterdir()] == ["e6.json"]  # no (0-byte) temp file left


def test_strict_manifest_build_also_quarantines_bad_names(tmp_path: Path) -> None:
    root = tmp_path / "fi"
    fx.make_fi(root)
    with open(os.path.join(os.fsencode(root / "Sadness"), LATIN1), "wb") as fh:
        fh.write(fx.image_bytes(seed=78))
    res = build_manifest("fi", "fi", root, split_file=tmp_path / "s.json", progress=False)
    assert res.counts["quarantined"] == {NOT_UTF8: 1} and res.counts["ok"] == 10


class _Scripted:
    """A generator whose answers are scripted (what a model might return), one with a stray `<image>`."""

    name, fingerprint = "scripted", "f" * 16

    def __init__(self) -> None:
        self.calls = 0

    async def health(self) -> None:
        return None

    async def generate(self, request):
        from tinyemo_core.generate.backends.base import Answer

        self.calls += 1
        text = "A <image> of a cat." if self.calls == 1 else "A calm scene? Yes, calm."
        return Answer(text=text, finish_reason="stop", prompt_tokens=5, completion_tokens=6)

    async def aclose(self) -> None:
        return None


def test_an_answer_with_the_image_placeholder_costs_that_answer_only(tmp_path: Path) -> None:
    from test_generate_core import _manifest

    from tinyemo_core.generate.chains import load_manifest, plan
    from tinyemo_core.generate.export import export_all
    from tinyemo_core.generate.runner import collect, generator_dir, run_generation
    from tinyemo_core.generate.spec import GenerationSpec

    spec = GenerationSpec(model="m", max_concurrency=1)
    spec = spec.model_copy(update={"splits": ["train", "test"]})
    chains = plan(load_manifest([_manifest(tmp_path, 4)], spec, image_root=tmp_path), spec)
    gen = _Scripted()
    report = run_generation(chains, gen, spec, tmp_path / "gen")
    assert report.failed == {"placeholder": 1}
    results = collect(chains, spec, tmp_path / "gen" / generator_dir(gen), gen.fingerprint)
    summary = export_all(results, tmp_path / "out", tmp_path, {"demo": ["anger", "awe", "fear", "joy"]})
    assert summary["left_out"] == {"failed:placeholder": 1}
    assert summary["files"]  # the export is written
    assert sum(r.status == "ok" for r in results) == len(chains) - 1
    pretrain = sum(s["records"] for s in summary["stats"]["pretrain"].values())
    assert pretrain == len(chains) - 1  # every other chain is exported
    records = [r for f in summary["files"].values() for r in json.loads(Path(f).read_text())]
    assert all(sum(t["value"].count("<image>") for t in r["conversations"]) == 1 for r in records)
