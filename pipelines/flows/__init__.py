"""The flows tinyemo can run, by their Prefect names."""

from __future__ import annotations

from collections.abc import Callable


def flows() -> dict[str, Callable]:
    from pipelines.flows.backbone_added import backbone_added
    from pipelines.flows.build_dataset import build_dataset
    from pipelines.flows.embed_labels import embed_labels
    from pipelines.flows.emotic import emotic_exports
    from pipelines.flows.evaluate import evaluate
    from pipelines.flows.evaluate_generated import evaluate_generated
    from pipelines.flows.experiments import dataset_ablation, encoder_backbone_grid
    from pipelines.flows.extract_features import extract_features
    from pipelines.flows.generate_qa import generate_qa_profile
    from pipelines.flows.import_features import import_features
    from pipelines.flows.interpret import bias_report, neuron_ablation, neuron_atlas
    from pipelines.flows.label_transfer import label_transfer
    from pipelines.flows.reasoning import finetune_reasoning, full_pipeline, reason
    from pipelines.flows.train_projector import train_projector

    return {
        f.name: f
        for f in (
            build_dataset,
            extract_features,
            embed_labels,
            train_projector,
            evaluate,
            evaluate_generated,
            generate_qa_profile,
            import_features,
            emotic_exports,
            finetune_reasoning,
            reason,
            full_pipeline,
            neuron_atlas,
            neuron_ablation,
            bias_report,
            backbone_added,
            dataset_ablation,
            encoder_backbone_grid,
            label_transfer,
        )
    }
