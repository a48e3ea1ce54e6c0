"""One identity per artifact kind (tinyemo_core.identity): model folders by content, cached on disk."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from tinyemo_core import identity
from tinyemo_core.finetune.spec import ModelSpec, ReasoningSpec, StageSpec, TrainArgs
from tinyemo_core.stages.finetune import plan_stage


@pytest.fixture(autouse=True)
def private_sidecar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TINYEMO_CACHE_DIR", str(tmp_path / "cache"))
    identity.forget_in_memory()
    yield tmp_path / "cache"
    identity.forget_in_memory()


def write_llm(folder: Path, seed: int) -> Path:
    """A small causal-LM-shaped folder: config, tokenizer file, one safetensors shard."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    save_file({"model.embed_tokens.weight": rng.standard_normal((64, 8)).astype(np.float32),
               "lm_head.weight": rng.standard_normal((64, 8)).astype(np.float32)},
              str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    (folder / "tokenizer.json").write_text("{}")
    return folder


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record every whole-file read the identity code does (the real hash still runs)."""
    reads: list[Path] = []
    real = identity._digest_file

    def counting(path: Path) -> str:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(identity, "_digest_file", counting)
    return reads


def test_llm_folder_retrained_in_place_changes_the_finetune_fingerprint(tmp_path: Path) -> None:
    llm = write_llm(tmp_path / "llm", seed=0)
    vision = write_llm(tmp_path / "vision", seed=1)
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "emoreason_train.json").write_text("[]")
    spec = ReasoningSpec(
        model=ModelSpec(vision=str(vision), llm=str(llm)),
        stages=["finetune"],
        finetune=StageSpec(export="emoreason_train", train=TrainArgs(learning_rate=1e-4)),
    )
    store = tmp_path / "storage"
    before = plan_stage(store, spec, exports, "finetune").fingerprint

    write_llm(llm, seed=0)  # rewritten with the same bytes (new mtime): same model, same fingerprint
    assert plan_stage(store, spec, exports, "finetune").fingerprint == before

    write_llm(llm, seed=7)  # retrained in place: same path, new weights
    after = plan_stage(store, spec, exports, "finetune").fingerprint
    assert after != before

    moved = tmp_path / "elsewhere" / "llm"  # the same weights under another path: the same model
    shutil.copytree(llm, moved)
    spec_moved = spec.model_copy(update={"model": spec.model.model_copy(update={"llm": str(moved)})})
    assert plan_stage(store, spec_moved, exports, "finetune").fingerprint == after


def test_hub_ids_are_named_by_id_and_revision(tmp_path: Path) -> None:
    assert identity.model_ref_identity("org/model", "abc") == {"hub": "org/model", "revision": "abc"}
    assert identity.model_ref_identity("org/model", "abc") != identity.model_ref_identity("org/model", "def")
    folder = write_llm(tmp_path / "m", seed=0)
    assert identity.model_ref_identity(str(folder), "abc") == {"folder": identity.model_dir_identity(folder)}


def test_sidecar_spares_the_reread_until_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_sidecar: Path
) -> None:
    folder = write_llm(tmp_path / "m", seed=0)
    reads = count_reads(monkeypatch)
    first = identity.model_dir_identity(folder)
    assert len(reads) == 3  # config, tokenizer, weights: each read once
    assert identity.sidecar_path().is_file() and identity.sidecar_path().parent == private_sidecar

    identity.forget_in_memory()  # a new command: only the sidecar remembers
    reads.clear()
    assert identity.model_dir_identity(folder) == first
    assert reads == []  # (path, size, mtime) unchanged: no byte of the folder was hashed again

    weights = folder / "model.safetensors"
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # touched: hashed again, same bytes
    identity.forget_in_memory()
    assert identity.model_dir_identity(folder) == first
    assert reads == [weights.resolve()]

    write_llm(folder, seed=3)  # new content
    identity.forget_in_memory()
    reads.clear()
    assert identity.model_dir_identity(folder) != first
    assert weights.resolve() in reads


def test_hidden_files_are_not_part_of_a_model(tmp_path: Path) -> None:
    folder = write_llm(tmp_path / "m", seed=0)
    ident = identity.model_dir_identity(folder)
    (folder / ".cache" / "huggingface").mkdir(parents=True)
    (folder / ".cache" / "huggingface" / "download.lock").write_text("now")
    assert identity.model_dir_identity(folder) == ident
    (folder / "generation_config.json").write_text("{}")
    assert identity.model_dir_identity(folder) != ident


def test_unusable_sidecar_falls_back_to_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("TINYEMO_CACHE_DIR", str(blocker))
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    assert identity.file_sha256(f) == "3:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_served_identity_uses_content_or_endpoint() -> None:
    tinyemo = {"id": "org/model", "tinyemo_fingerprint": "0123456789abcdef"}
    a = identity.served_identity("http://127.0.0.1:8000/v1", "org/model", None, tinyemo)
    b = identity.served_identity("http://10.0.0.2:9000/v1/", "org/model", None, tinyemo)
    assert a == b  # the content identity names the model wherever it is served
    vllm = {"id": "org/model", "root": "/models/llava"}
    c = identity.served_identity("http://127.0.0.1:8000/v1", "org/model", None, vllm)
    d = identity.served_identity("http://10.0.0.2:9000/v1", "org/model", None, vllm)
    assert c != d and c["served"] == "/models/llava"  # a host path alone does not name weights
    assert identity.served_identity("http://h/v1", "org/model", None, tinyemo, pad_to_square=[1, 2, 3]) != a


def test_projector_fingerprints_of_local_models_are_unchanged(tmp_path: Path) -> None:
    """What the vision / label-backbone fingerprints are made of, as the code before tinyemo_core.identity
    computed it (pinned values, path-free): no feature or label store may move (change only on purpose)."""
    import hashlib

    from tinyemo_core.encoders.embedding_table import embedding_identity
    from tinyemo_core.encoders.fingerprints import vision_fingerprint
    from tinyemo_core.encoders.specs import VisionEncoderSpec

    root = tmp_path / "m"
    root.mkdir()
    rng = np.random.default_rng(0)
    save_file({"model.embed_tokens.weight": rng.standard_normal((50, 8)).astype(np.float32),
               "lm_head.weight": rng.standard_normal((50, 8)).astype(np.float32)},
              str(root / "model.safetensors"))
    (root / "config.json").write_text('{"a": 1}')
    (root / "tokenizer.json").write_text('{"t": 1}')
    files = [root / n for n in ("config.json", "tokenizer.json", "model.safetensors")]
    expected = {p.name: f"{p.stat().st_size}:{hashlib.sha256(p.read_bytes()).hexdigest()}" for p in files}
    weights = str(root / "model.safetensors")
    for _ in range(2):  # cold, then from the sidecar
        identity.forget_in_memory()
        assert identity.files_identity(files, full=True) == expected
        assert embedding_identity(root) == "d8dd11bf01d4131fec3cd09257e2ebef42b0e7f708240182c486982ad5184cff"
        openclip = VisionEncoderSpec(kind="open_clip", model="ViT-B-32", pretrained=weights)
        assert vision_fingerprint(openclip) == "e28e9bbb6374b304"
