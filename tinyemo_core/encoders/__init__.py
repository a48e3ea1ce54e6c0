"""Frozen vision encoders and label embedders (the expensive models whose outputs are cached)."""

from tinyemo_core.encoders.specs import BackboneSpec, VisionEncoderSpec

__all__ = ["BackboneSpec", "VisionEncoderSpec"]
