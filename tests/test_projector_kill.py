"""A training process killed with SIGKILL resumes from its last epoch checkpoint, bit-identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tinyemo_core.projector import TrainData, TrainingSpec, train_projector

SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    import torch
    from tinyemo_core.projector import TrainData, TrainingSpec, train_projector
    work = Path(sys.argv[1])
    torch.set_num_threads(1)  # the same thread count as the parent: bit-identical float results
    def on_epoch(record):
        if record["epoch"] == 2:
            (work / "epoch2.marker").touch()
        time.sleep(0.4)  # leave the parent time to kill us before the run can finish
    feats = np.load(work / "x.npy", mmap_mode="r")
    train_projector(TrainData(feats, np.load(work / "y.npy")), None, np.load(work / "labels.npy"),
                    TrainingSpec.model_validate_json((work / "spec.json").read_text()), work / "run",
                    progress=False, on_epoch=on_epoch)
""")


@pytest.mark.slow
def test_sigkilled_training_resumes_bit_identical(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    x = (rng.normal(size=(5, 24))[y] * 2 + rng.normal(size=(300, 24))).astype(np.float16)
    labels = rng.normal(size=(5, 40)).astype(np.float32)
    spec = TrainingSpec(epochs=8, batch_size=32, max_lr=2e-3, synonym_prob=0.0)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "labels.npy", labels)
    (tmp_path / "spec.json").write_text(spec.model_dump_json())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "epoch2.marker").exists():
            assert proc.poll() is None, "training process exited early"
            assert time.monotonic() < deadline, "training never reached epoch 2"
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    run = tmp_path / "run"
    assert (run / "checkpoint.pt").exists()
    assert '"done": false' in (run / "metrics.json").read_text()

    data = TrainData(np.load(tmp_path / "x.npy", mmap_mode="r"), y)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        resumed = train_projector(data, None, labels, spec, run, progress=False)
        straight = train_projector(data, None, labels, spec, tmp_path / "straight", progress=False)
    finally:
        torch.set_num_threads(before)
    assert resumed.resumed_from_epoch >= 2
    a, b = load_file(str(resumed.last_path)), load_file(str(straight.last_path))
    assert all(torch.equal(a[k], b[k]) for k in b)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in straight.history]
