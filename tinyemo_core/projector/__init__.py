"""The Metric Projector (TinyEmo §III-B): model, losses, training loop, run folders.

Names are imported lazily so that reading a config (``tinyemo_core.projector.spec``) does not import torch.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "TrainData": "data", "load_projector": "io", "project": "io",
    "FullyContrastiveLoss": "losses", "SemiContrastiveLoss": "losses", "build_loss": "losses",
    "MetricProjector": "model", "count_parameters": "model", "TrainingSpec": "spec",
    "TrainResult": "train", "train_projector": "train", "validation_accuracy": "train",
}  # fmt: skip
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
