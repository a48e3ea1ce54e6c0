"""Named encoders/backbones for tests, read from the project's flows.yaml (the one registry)."""

from __future__ import annotations

from pathlib import Path

from tinyemo_core.config import load_flows
from tinyemo_core.encoders.specs import BackboneSpec, VisionEncoderSpec
from tinyemo_core.registry import backbone_spec, encoder_spec

FLOWS_YAML = Path(__file__).resolve().parents[1] / "flows.yaml"


def vision_entry(name: str) -> VisionEncoderSpec:
    return encoder_spec(load_flows(FLOWS_YAML), name)


def backbone_entry(name: str) -> BackboneSpec:
    return backbone_spec(load_flows(FLOWS_YAML), name)
