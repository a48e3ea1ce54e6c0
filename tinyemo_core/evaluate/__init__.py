"""Evaluation: per-dataset scoring against each dataset's own labels, summaries, reports, re-grounding."""

from tinyemo_core.evaluate.metrics import (
    HELD_IN,
    ZERO_SHOT,
    DatasetScore,
    MapResult,
    mean_average_precision,
    score_dataset,
    summarise,
    vad_error,
)
from tinyemo_core.evaluate.regrounding import regrounding_table, score_with_labels
from tinyemo_core.evaluate.report import write_report

__all__ = [
    "HELD_IN", "ZERO_SHOT", "DatasetScore", "MapResult", "mean_average_precision", "regrounding_table",
    "score_dataset", "score_with_labels", "summarise", "vad_error", "write_report",
]
