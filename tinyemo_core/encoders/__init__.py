"""Frozen vision encoders and label embedders (the expensive models whose outputs are cached)."""

from tinyemo_core.encoders.specs import (
    BACKBONE_PRESETS,
    VISION_PRESETS,
    BackboneSpec,
    VisionEncoderSpec,
    backbone_preset,
    vision_preset,
)

__all__ = ["BACKBONE_PRESETS", "VISION_PRESETS", "BackboneSpec", "VisionEncoderSpec", "backbone_preset",
           "vision_preset"]
