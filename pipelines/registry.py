"""The flows tinyemo can run, by their Prefect names."""

from __future__ import annotations

from collections.abc import Callable


def flows() -> dict[str, Callable]:
    from pipelines.backbones import backbone_added
    from pipelines.build_dataset import build_dataset
    from pipelines.embed_labels import embed_labels
    from pipelines.evaluate import evaluate
    from pipelines.experiments import dataset_ablation, encoder_backbone_grid
    from pipelines.extract_features import extract_features
    from pipelines.generate_qa import generate_qa_profile
    from pipelines.train_projector import train_projector

    return {
        f.name: f
        for f in (
            build_dataset,
            extract_features,
            embed_labels,
            train_projector,
            evaluate,
            generate_qa_profile,
            backbone_added,
            dataset_ablation,
            encoder_backbone_grid,
        )
    }
