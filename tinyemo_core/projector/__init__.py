"""The Metric Projector (TinyEmo §III-B): model, losses, training loop, run folders."""

from tinyemo_core.projector.data import TrainData
from tinyemo_core.projector.io import load_projector, project
from tinyemo_core.projector.losses import FullyContrastiveLoss, SemiContrastiveLoss, build_loss
from tinyemo_core.projector.model import MetricProjector, count_parameters
from tinyemo_core.projector.spec import TrainingSpec
from tinyemo_core.projector.train import TrainResult, train_projector, validation_accuracy

__all__ = [
    "FullyContrastiveLoss", "MetricProjector", "SemiContrastiveLoss", "TrainData", "TrainResult",
    "TrainingSpec",
    "build_loss", "count_parameters", "load_projector", "project", "train_projector", "validation_accuracy",
]
