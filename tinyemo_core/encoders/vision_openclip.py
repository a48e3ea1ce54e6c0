"""open_clip image towers (CLIP ViT-L/14 `openai` as in the paper, ViT-B/16, SigLIP, custom configs)."""

from __future__ import annotations

from pathlib import Path

import PIL.Image
import torch

from tinyemo_core.encoders.fingerprints import resolve_config_file
from tinyemo_core.encoders.specs import VisionEncoderSpec
from tinyemo_core.encoders.vision_base import VisionEncoder


def _register_config(config_file: str, model: str) -> None:
    import open_clip

    path = resolve_config_file(config_file)
    if path.stem != model:
        raise ValueError(
            f"open_clip registers a config under its file stem: config_file {path.name!r} defines "
            f"{path.stem!r}, but model is {model!r}; set model: {path.stem}"
        )
    if model not in open_clip.list_models():
        open_clip.add_model_config(path)


class OpenClipEncoder(VisionEncoder):
    """The vision tower of an open_clip model; the text tower is dropped after creation."""

    def __init__(self, spec: VisionEncoderSpec, fingerprint: str, device: str) -> None:
        import open_clip

        if spec.config_file:
            _register_config(spec.config_file, spec.model)
        if spec.model not in open_clip.list_models():
            raise ValueError(
                f"unknown open_clip model {spec.model!r}; use a name from open_clip.list_models() or ship a "
                "config JSON via config_file"
            )
        pretrained = spec.pretrained
        if pretrained is not None and Path(pretrained).expanduser().exists():
            pretrained = str(Path(pretrained).expanduser())
        if pretrained is None:
            torch.manual_seed(spec.seed)  # random init must be reproducible (offline demo)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                spec.model, pretrained=pretrained, device="cpu", pretrained_hf=False
            )
        except (RuntimeError, OSError) as exc:  # network refused / file missing
            raise RuntimeError(
                f"could not load open_clip {spec.model!r} weights {spec.pretrained!r}: {exc}. Offline? Put "
                "the checkpoint file on disk and set pretrained: /path/to/open_clip_model.safetensors"
            ) from exc
        self.visual = model.visual.eval().requires_grad_(False).to(device)
        del model  # the text tower is not needed
        self._preprocess = preprocess
        self.spec = spec
        self.fingerprint = fingerprint
        self.device = device
        size = self.visual.image_size
        self.image_size = int(size[0] if isinstance(size, tuple | list) else size)
        self.dim = int(getattr(self.visual, "output_dim", 0) or self._probe_dim())
        blocks = getattr(getattr(self.visual, "transformer", None), "resblocks", None)
        if blocks is None:
            blocks = getattr(getattr(self.visual, "trunk", None), "blocks", None)
        self._n_blocks = len(blocks) if blocks is not None else None

    def _probe_dim(self) -> int:
        with torch.inference_mode():
            x = torch.zeros(1, 3, self.image_size, self.image_size, device=self.device)
            return int(self.visual(x).shape[-1])

    def preprocess(self, img: PIL.Image.Image) -> torch.Tensor:
        """open_clip's own eval transform: bicubic resize + centre crop + the model's mean/std."""
        return self._preprocess(img)

    def _forward(self, batch: torch.Tensor, patches: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not patches:
            return self.visual(batch), None  # == CLIP.encode_image(normalize=False)
        if self._n_blocks is None or not hasattr(self.visual, "forward_intermediates"):
            raise NotImplementedError(f"patch tokens are not supported for open_clip {self.spec.model!r}")
        out = self.visual.forward_intermediates(batch, indices=[self._n_blocks - 2], output_fmt="NLC")
        return out["image_features"], out["image_intermediates"][0]  # prefix tokens already removed
