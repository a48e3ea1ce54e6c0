"""One walk per flow run, and none served from the memo once that flow run is over."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from pipelines.runtime.memo import walk_once_per_flow_run
from tinyemo_core.store import manifests
from tinyemo_core.store.manifests import listing_hash


def test_walk_memo_lives_as_long_as_its_flow_run(tmp_path: Path, prefect_harness, monkeypatch) -> None:
    (tmp_path / "a.jpg").write_bytes(b"1")
    walks: list[Path] = []
    real_walk = manifests._walk
    monkeypatch.setattr(manifests, "_walk", lambda root: walks.append(root) or real_walk(root))

    @flow(name="walk-memo-probe")
    def probe() -> tuple[str, str]:
        walk_once_per_flow_run()
        first = listing_hash(tmp_path)
        (tmp_path / "b.jpg").write_bytes(b"2")  # inside the run the memo answers: one walk per run
        return first, listing_hash(tmp_path)

    first, second = probe()
    assert first == second and len(walks) == 1
    # after the run: the change is seen, and every call walks again
    assert listing_hash(tmp_path) != first
    assert listing_hash(tmp_path) != first
    assert len(walks) == 3
