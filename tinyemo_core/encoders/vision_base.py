"""The vision-encoder interface every backend implements (open_clip in ``vision_openclip``, transformers in
``vision_hf``); :func:`tinyemo_core.encoders.vision.load_vision_encoder` picks one.

The pooled feature is the one TinyEmo trains on (TinyEmo §III-B/Table II, as the authors' code extracts
it): open_clip ``encode_image`` (final CLS after ``ln_post`` and the projection, NOT normalised), SigLIP
``get_image_features`` (the attention-pool head), DINOv2 the final-layernormed CLS token. Optional patch
tokens are the penultimate block's outputs with the prefix (CLS/register) tokens dropped, as TinyLLaVA
feeds its connector (``hidden_states[-2]``).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch

from tinyemo_core.encoders.specs import VisionEncoderSpec

_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class EncodedBatch:
    """One forward's outputs: pooled (N, dim) and, when asked for, patch tokens (N, T, width)."""

    pooled: np.ndarray
    patches: np.ndarray | None = None


class VisionEncoder(ABC):
    """A loaded, frozen, eval-mode image encoder with its own preprocessing."""

    fingerprint: str
    dim: int
    image_size: int
    device: str
    spec: VisionEncoderSpec

    @abstractmethod
    def preprocess(self, img: PIL.Image.Image) -> torch.Tensor:
        """PIL RGB image -> (3, H, W) float tensor exactly as the model was trained to see it."""

    @abstractmethod
    def _forward(self, batch: torch.Tensor, patches: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Model forward on a device batch: pooled (N, dim) and optional patch tokens."""

    def encode_batch(self, batch: torch.Tensor, patches: bool | None = None) -> EncodedBatch:
        """Encode a preprocessed batch (N, 3, H, W) in one forward; float32 numpy on the host."""
        want = self.spec.patch_tokens if patches is None else patches
        batch = batch.to(self.device, non_blocking=True)
        with torch.inference_mode(), self._autocast():
            pooled, toks = self._forward(batch, want)
        out_p = pooled.float().cpu().numpy()
        out_t = toks.float().cpu().numpy() if toks is not None else None
        return EncodedBatch(np.ascontiguousarray(out_p, dtype=np.float32), out_t)

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        """Pooled features (N, dim) float32, not normalised."""
        return self.encode_batch(batch, patches=False).pooled

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.spec.dtype == "float32":
            return contextlib.nullcontext()
        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        return torch.autocast(device_type=device_type, dtype=_TORCH_DTYPES[self.spec.dtype])


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; anything else is passed through."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"encoder device {device!r} requested but torch sees no CUDA GPU; "
                           "use device: auto")
    return device
