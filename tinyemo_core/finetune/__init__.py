"""Reasoning fine-tuning: model assembly (LLaVA layout), LLaVA-format data, the shared trainer, recipes."""
