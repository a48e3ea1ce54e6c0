"""Marker names and paths under the storage root live only in ``tinyemo_core/store/`` (issue 18, "Done
when"): a grep over ``tinyemo_core/`` and ``pipelines/`` (the store package excluded) for every marker a
store kind declares and for a path joined onto a store kind's folder."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: lines that join a store folder's name onto something other than the storage root, and why
NOT_THE_STORE = {"tinyemo_core/data/adapters/emotic.py": "the EMOTIC dataset's own emotic/ image folder"}


def _sources() -> list[Path]:
    files = [*(ROOT / "tinyemo_core").rglob("*.py"), *(ROOT / "pipelines").rglob("*.py")]
    return [p for p in files if not p.is_relative_to(ROOT / "tinyemo_core" / "store")]


def test_every_store_kind_declares_where_it_lives() -> None:
    from tinyemo_core.store.inventory import all_markers, kinds

    names = {k.kind for k in kinds()}
    expected = {"manifest", "features", "labels", "run", "evaluation", "generated-evaluation", "experiment",
                "instructions", "generations", "answers", "activations", "finetune", "reasoning", "emotic",
                "emotic-boxes", "demo-data", "models", "splits", "backbones"}
    assert expected <= names, expected - names
    assert {"_manifest.json", "metrics.json", "report.json", "train_result.json", "export.json",
            "summary.json", "result.json", ".tinyemo-demo.json", "backbones.yaml"} <= all_markers()


def test_no_marker_or_store_path_outside_the_store_package() -> None:
    from tinyemo_core.store.inventory import all_markers, kinds

    markers = sorted(all_markers())
    quoted = re.compile("|".join(rf"""["']{re.escape(m)}["']""" for m in markers))
    folders = sorted({k.folder.split("/")[0] for k in kinds()} - {"."})
    joined = re.compile(rf"""/\s*["']({"|".join(map(re.escape, folders))})["']""")
    offenders = []
    for path in _sources():
        rel = str(path.relative_to(ROOT))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if quoted.search(line) or (joined.search(line) and rel not in NOT_THE_STORE):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
