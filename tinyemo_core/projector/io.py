"""A projector run folder on disk: safetensors weights, config/metrics JSON, resumable epoch checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tinyemo_core.projector.model import MetricProjector
from tinyemo_core.store.atomic import read_json, write_atomic, write_json
from tinyemo_core.store.runs import CONFIG, METRICS  # noqa: F401 (the run store names them)

BEST, LAST, CHECKPOINT = "best.safetensors", "last.safetensors", "checkpoint.pt"


def save_weights(model: MetricProjector, path: Path, state: dict[str, torch.Tensor] | None = None) -> Path:
    """Atomically write ``state`` (default: the model's state dict, BatchNorm buffers included)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in (state or model.state_dict()).items()}
    return write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Atomically write the epoch checkpoint (tmp file + ``os.replace``): a kill never leaves half a file."""
    return write_atomic(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The epoch checkpoint, or None if there is none (tensors and plain Python values only)."""
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def load_projector(run_dir: Path | str, which: Literal["best", "last"] = "best",
                   device: str = "cpu") -> MetricProjector:
    """Rebuild the projector of a finished run from its ``config.json`` and weights, in eval mode."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / CONFIG)
    weights = run_dir / (BEST if which == "best" else LAST)
    if config is None or not weights.exists():
        raise FileNotFoundError(f"{run_dir} holds no finished projector run ({CONFIG} and {weights.name} "
                                "needed); train one first (tinyemo run train-projector)")
    dims = config["model"]
    model = MetricProjector(dims["in_dim"], dims["out_dim"], dims["hidden_dim"], dims["dropout"])
    model.load_state_dict(load_file(str(weights), device=device))
    return model.to(device).eval()


@torch.no_grad()
def project(model: MetricProjector, features: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Unit-norm projected embeddings (N, out_dim) float32, computed in eval mode in batches (memmap-safe)."""
    if features.ndim != 2 or features.shape[1] != model.in_dim:
        raise ValueError(f"features must have shape (N, {model.in_dim}), got {features.shape}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = np.empty((len(features), model.out_dim), dtype=np.float32)
    for start in range(0, len(features), batch_size):
        rows = torch.from_numpy(np.asarray(features[start:start + batch_size], dtype=np.float32))
        out[start:start + len(rows)] = model(rows.to(device)).cpu().numpy()
    model.train(was_training)
    return out


CALIBRATION, TRAINED_LABELS = "calibration.json", "trained_labels.json"


def write_trained_labels(run_dir: Path, texts: list[str]) -> Path:
    """Record the label texts a run was trained towards (``tinyemo predict`` flags every other word)."""
    return write_json(Path(run_dir) / TRAINED_LABELS, {"texts": sorted(set(texts))})


def read_trained_labels(run_dir: Path) -> list[str] | None:
    """The label texts the run trained on, or None for a run trained before they were recorded."""
    data = read_json(Path(run_dir) / TRAINED_LABELS)
    return None if data is None else list(data["texts"])


def write_calibration(run_dir: Path, calibration: dict[str, Any]) -> Path:
    """Store a run's calibration (method, margin, how it was chosen) next to its weights."""
    return write_json(Path(run_dir) / CALIBRATION, calibration)


def read_calibration(run_dir: Path) -> dict[str, Any] | None:
    """The run's calibration, or None when none was chosen for it."""
    return read_json(Path(run_dir) / CALIBRATION)
