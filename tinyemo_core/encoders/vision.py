"""Frozen vision encoders: one interface over open_clip and transformers models, plus their fingerprints.

The pooled feature is the one TinyEmo trains on (REFERENCE_NOTES, TinyEmo §III-B/Table II): open_clip
``encode_image`` (final CLS after ``ln_post`` and the projection, NOT normalised), SigLIP
``get_image_features`` (the attention-pool head), DINOv2 the final-layernormed CLS token. Optional patch
tokens are the penultimate block's outputs with the prefix (CLS/register) tokens dropped, as TinyLLaVA
feeds its connector (``hidden_states[-2]``).
"""

from __future__ import annotations

import contextlib
import importlib.resources
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from tinyemo_core.encoders.hashing import file_sha256, files_identity, hash_json
from tinyemo_core.encoders.specs import VisionEncoderSpec

# Bump when the code that turns (spec, image) into a vector changes in a way that changes the vector.
CODE_VERSION = "vision-1"

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

    def encode_patches(self, batch: torch.Tensor) -> np.ndarray:
        """Patch tokens (N, T, width) float32 of the penultimate block, prefix tokens dropped."""
        toks = self.encode_batch(batch, patches=True).patches
        assert toks is not None
        return toks

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


def resolve_config_file(config_file: str) -> Path:
    """``builtin:<name>.json`` -> a file shipped in tinyemo_core/encoders/configs; else a filesystem path."""
    if config_file.startswith("builtin:"):
        ref = importlib.resources.files("tinyemo_core.encoders") / "configs" / config_file[len("builtin:"):]
        path = Path(str(ref))
    else:
        path = Path(config_file).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"open_clip config_file {config_file!r} not found (looked at {path})")
    return path


def _is_local(ref: str) -> bool:
    return Path(ref).expanduser().exists()


def _open_clip_identity(spec: VisionEncoderSpec) -> dict:
    """Everything open_clip-specific that fixes the output, read from config tables (no model built)."""
    import open_clip

    ident: dict = {"model": spec.model}
    if spec.config_file:
        ident["config_file"] = file_sha256(resolve_config_file(spec.config_file))
    else:
        ident["model_cfg"] = open_clip.get_model_config(spec.model)  # image size, widths, pooling...
    if spec.pretrained is None:
        ident["weights"] = f"random-init:seed={spec.seed}"
    elif _is_local(spec.pretrained):
        ident["weights"] = file_sha256(Path(spec.pretrained).expanduser())
    else:
        cfg = open_clip.get_pretrained_cfg(spec.model, spec.pretrained)
        if not cfg:
            raise ValueError(
                f"open_clip has no pretrained tag {spec.pretrained!r} for {spec.model!r}; see "
                f"open_clip.list_pretrained_tags_by_model({spec.model!r}) or give a local weights file"
            )
        ident["weights"] = {"tag": spec.pretrained, "source": {k: cfg.get(k) for k in ("url", "hf_hub")}}
        # preprocessing overrides carried by the pretrained config (mean/std/interpolation/resize mode)
        ident["preprocess"] = {k: cfg.get(k) for k in ("mean", "std", "interpolation", "resize_mode")}
    return ident


def _hf_identity(spec: VisionEncoderSpec) -> dict:
    ident: dict = {"model": spec.model, "revision": spec.revision}
    if _is_local(spec.model):
        root = Path(spec.model).expanduser()
        # weights + config + preprocessor config: the full content hash (cached in-process).
        ident["files"] = files_identity(
            [*root.glob("*.safetensors"), *root.glob("*.bin"), root / "config.json",
             root / "preprocessor_config.json"], full=True)
    return ident


def vision_fingerprint(spec: VisionEncoderSpec) -> str:
    """Hash of everything that determines the encoder's output; never loads the model.

    It names a stored feature set, so ``store_dtype`` is in; batch_size, num_workers and device are out
    (device only changes floating-point rounding), and so is ``patch_tokens`` (patches go to their own store,
    the pooled vectors do not depend on it).
    """
    ident = _open_clip_identity(spec) if spec.kind == "open_clip" else _hf_identity(spec)
    payload = {"kind": spec.kind, "ident": ident, "dtype": spec.dtype, "store_dtype": spec.store_dtype,
               "code": CODE_VERSION}
    return hash_json(payload)[:16]


def load_vision_encoder(spec: VisionEncoderSpec) -> VisionEncoder:
    """Build the encoder described by ``spec`` (eval mode, frozen, on its device)."""
    if spec.kind == "open_clip":
        from tinyemo_core.encoders.vision_openclip import OpenClipEncoder

        return OpenClipEncoder(spec, vision_fingerprint(spec), resolve_device(spec.device))
    from tinyemo_core.encoders.vision_hf import HFVisionEncoder

    return HFVisionEncoder(spec, vision_fingerprint(spec), resolve_device(spec.device))
