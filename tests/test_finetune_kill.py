"""kill -9 during reasoning stage 2, rerun: resumes from the last checkpoint and ends bit-identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tinyemo_core.finetune.spec import ModelSpec, ReasoningSpec, StageSpec, TinyModelSpec, TrainArgs
from tinyemo_core.finetune.tiny import tiny_exports
from tinyemo_core.stages.finetune import run_finetune

SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)  # same thread count as the parent: bit-identical float results
    from tinyemo_core.finetune.spec import ReasoningSpec
    from tinyemo_core.stages.finetune import run_finetune
    work = Path(sys.argv[1])
    def on_progress(rec):
        if rec["stage"] == "finetune" and rec["step"] >= 5:
            (work / "past-checkpoint.marker").touch()
            time.sleep(0.5)  # leave the parent time to kill us mid-stage
    spec = ReasoningSpec.model_validate_json((work / "spec.json").read_text())
    run_finetune(work / "storage", spec, work / "data", work / "data", on_progress=on_progress)
""")


def _spec() -> ReasoningSpec:
    return ReasoningSpec(
        model=ModelSpec(tiny=TinyModelSpec()),
        pretrain=StageSpec(
            export="pretrain_train",
            train=TrainArgs(learning_rate=1e-2, max_steps=3, per_device_train_batch_size=4),
        ),
        finetune=StageSpec(
            export="emoreason_train",
            train=TrainArgs(learning_rate=5e-3, max_steps=12, per_device_train_batch_size=2, save_steps=4),
        ),
    )


def _weights(model_dir: str) -> dict[str, torch.Tensor]:
    return load_file(str(next(Path(model_dir).glob("*.safetensors"))))


@pytest.mark.slow
def test_sigkill_in_stage2_resumes_bit_identical(tmp_path: Path) -> None:
    spec = _spec()
    tiny_exports(tmp_path / "data", 6)
    (tmp_path / "spec.json").write_text(spec.model_dump_json())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env)
    try:
        deadline = time.monotonic() + 180
        while not (tmp_path / "past-checkpoint.marker").exists():
            assert proc.poll() is None, "training process exited early"
            assert time.monotonic() < deadline, "training never reached stage 2 step 5"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    stage2 = next((tmp_path / "storage" / "finetune" / "tinyemo").glob("finetune-*"))
    assert not (stage2 / "train_result.json").exists() and (stage2 / "checkpoints" / "checkpoint-4").is_dir()

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        resumed = run_finetune(tmp_path / "storage", spec, tmp_path / "data", tmp_path / "data")
        straight = run_finetune(tmp_path / "straight", spec, tmp_path / "data", tmp_path / "data")
    finally:
        torch.set_num_threads(before)
    r, s = resumed["stages"]["finetune"], straight["stages"]["finetune"]
    assert not resumed["stages"]["pretrain"]["computed"]  # stage 1 finished before the kill: reused
    assert r["resumed_from_step"] >= 4 and s["resumed_from_step"] == 0 and r["steps"] == s["steps"] == 12
    a, b = _weights(r["model"]), _weights(s["model"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
