"""transformers image towers: DINOv2 (with registers), SigLIP, CLIP - by hub id or local directory."""

from __future__ import annotations

from pathlib import Path

import PIL.Image
import torch

from tinyemo_core.encoders.specs import VisionEncoderSpec
from tinyemo_core.encoders.vision_base import VisionEncoder

# model_type -> (pooled feature, number of prefix tokens before the patches)
_SUPPORTED = ("dinov2", "dinov2_with_registers", "siglip", "siglip_vision_model", "clip", "clip_vision_model")


def _model_class(model_type: str) -> type:
    import transformers as tf

    if model_type.startswith("siglip"):
        return tf.SiglipVisionModel  # == SiglipModel.get_image_features, without the text tower
    if model_type.startswith("clip"):
        return tf.CLIPVisionModelWithProjection  # image_embeds == CLIPModel.get_image_features
    return tf.AutoModel


class HFVisionEncoder(VisionEncoder):
    """A transformers vision model + its own image processor (DINOv2: resize 256, crop 224, ImageNet norm)."""

    def __init__(self, spec: VisionEncoderSpec, fingerprint: str, device: str) -> None:
        from transformers import AutoConfig, AutoImageProcessor

        ref = str(Path(spec.model).expanduser()) if Path(spec.model).expanduser().exists() else spec.model
        try:
            config = AutoConfig.from_pretrained(ref, revision=spec.revision)
            self._processor = AutoImageProcessor.from_pretrained(ref, revision=spec.revision)
        except OSError as exc:
            raise RuntimeError(
                f"could not load transformers vision model {spec.model!r}: {exc}. Offline? Download it once "
                "(huggingface-cli download ...) and set model: /local/dir (it needs config.json, "
                "preprocessor_config.json and the weights)"
            ) from exc
        model_type = config.model_type
        if model_type not in _SUPPORTED:
            raise ValueError(f"unsupported vision model_type {model_type!r} for kind=hf; "
                             f"supported: {_SUPPORTED}")
        self.model = _model_class(model_type).from_pretrained(ref, revision=spec.revision)
        self.model = self.model.eval().requires_grad_(False).to(device)
        vcfg = getattr(self.model.config, "vision_config", None) or self.model.config
        self._kind = model_type.split("_")[0]
        self._prefix = {"dinov2": 1 + int(getattr(vcfg, "num_register_tokens", 0) or 0), "siglip": 0,
                        "clip": 1}[self._kind]
        self.spec = spec
        self.fingerprint = fingerprint
        self.device = device
        self.image_size = int(vcfg.image_size)
        self.dim = int(getattr(self.model.config, "projection_dim", 0) if self._kind == "clip"
                       else vcfg.hidden_size)

    def preprocess(self, img: PIL.Image.Image) -> torch.Tensor:
        """The checkpoint's own image processor (preprocessor_config.json)."""
        return self._processor(images=img.convert("RGB"), return_tensors="pt")["pixel_values"][0]

    def _forward(self, batch: torch.Tensor, patches: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.model(pixel_values=batch, output_hidden_states=patches)
        pooled = out.image_embeds if self._kind == "clip" else out.pooler_output  # DINOv2: layernormed CLS
        toks = out.hidden_states[-2][:, self._prefix:] if patches else None
        return pooled, toks
