"""Content fingerprints: stable under key order, sensitive to every input and to the step's code version."""

from __future__ import annotations

from pathlib import Path

from tinyemo_core import fingerprint
from tinyemo_core.fingerprint import stable_hash, step_fingerprint
from tinyemo_core.identity import file_sha256
from tinyemo_core.projector.spec import TrainingSpec


def test_stable_hash_ignores_key_order_and_sees_values() -> None:
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})
    assert stable_hash([1, 2]) != stable_hash([2, 1])  # lists keep their order
    assert stable_hash({1, 2}) == stable_hash({2, 1})  # sets do not
    assert stable_hash(Path("/x/y")) == stable_hash("/x/y")
    assert stable_hash(TrainingSpec(epochs=3)) == stable_hash(TrainingSpec(epochs=3).model_dump(mode="json"))
    assert stable_hash(TrainingSpec(epochs=3)) != stable_hash(TrainingSpec(epochs=4))


def test_step_fingerprint_changes_with_code_version(monkeypatch) -> None:
    before = step_fingerprint("train", {"x": 1})
    assert step_fingerprint("train", {"x": 1}) == before
    monkeypatch.setitem(fingerprint.CODE_VERSIONS, "train", "999")
    assert step_fingerprint("train", {"x": 1}) != before
    assert step_fingerprint("evaluate", {"x": 1}) != step_fingerprint("train", {"x": 1})


def test_file_sha256(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    assert file_sha256(path) == "3:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
