"""Load a frozen vision encoder from its spec (backends implement ``vision_base.VisionEncoder``)."""

from __future__ import annotations

from tinyemo_core.encoders.fingerprints import vision_fingerprint
from tinyemo_core.encoders.specs import VisionEncoderSpec
from tinyemo_core.encoders.vision_base import VisionEncoder, resolve_device


def load_vision_encoder(spec: VisionEncoderSpec) -> VisionEncoder:
    """Build the encoder described by ``spec`` (eval mode, frozen, on its device)."""
    if spec.kind == "open_clip":
        from tinyemo_core.encoders.vision_openclip import OpenClipEncoder

        return OpenClipEncoder(spec, vision_fingerprint(spec), resolve_device(spec.device))
    from tinyemo_core.encoders.vision_hf import HFVisionEncoder

    return HFVisionEncoder(spec, vision_fingerprint(spec), resolve_device(spec.device))
