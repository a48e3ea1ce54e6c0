"""CLIPScore and RefCLIPScore (Hessel et al. 2021, EMNLP; reference code jmhessel/clipscore).

- CLIP-S(c, v) = w * max(cos(E_text("A photo depicts " + c), E_image(v)), 0) with w = 2.5.
- RefCLIP-S(c, R, v) = harmonic mean of CLIP-S(c, v) and max(max_{r in R} cos(E_text(c), E_text(r)), 0),
  references prefixed the same way (the reference code passes them through the same caption dataset).
  The paper clips the text-text maximum at 0; the reference code does not (identical whenever some reference
  has a positive cosine). We follow the paper; a harmonic mean of two zeros is 0.
- Texts are tokenised by the CLIP model's own tokenizer and truncated to its context length (77 tokens for
  every released CLIP), the last kept token being end-of-text, like ``clip.tokenize(..., truncate=True)``.
- Image features: the stored ``encode_image`` outputs of the matching encoder (L2-normalised here), or an
  image forward pass of the same model. Corpus scores are means over instances (TinyEmo Table VI prints them
  x100).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tinyemo_core.encoders.specs import VisionEncoderSpec

W = 2.5
PREFIX = "A photo depicts "


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def clip_s(image_feats: np.ndarray, cand_feats: np.ndarray, w: float = W) -> np.ndarray:
    """Per-instance CLIP-S from (N, D) image and candidate text features (any scale; normalised here)."""
    img, txt = l2_normalise(image_feats), l2_normalise(cand_feats)
    if img.shape != txt.shape:
        raise ValueError(f"image features {img.shape} and candidate features {txt.shape} differ")
    return w * np.clip(np.sum(img * txt, axis=1), 0, None)


def ref_clip_s(
    clip_scores: np.ndarray, cand_feats: np.ndarray, ref_feats: Sequence[np.ndarray]
) -> np.ndarray:
    """Per-instance RefCLIP-S: harmonic mean of CLIP-S and the clipped best candidate-reference cosine."""
    cand = l2_normalise(cand_feats)
    if len(ref_feats) != len(cand):
        raise ValueError(f"{len(cand)} candidates but {len(ref_feats)} reference lists")
    out = np.zeros(len(cand), dtype=np.float64)
    for i, refs in enumerate(ref_feats):
        if len(refs) == 0:
            raise ValueError(f"candidate {i} has no reference; RefCLIP-S needs at least one")
        best = max(float(np.max(l2_normalise(refs) @ cand[i])), 0.0)
        a = float(clip_scores[i])
        out[i] = 2 * a * best / (a + best) if a + best > 0 else 0.0
    return out


class ClipScorer:
    """The full open_clip model (text + image towers) of a vision-encoder spec: the one whose image tower
    produced the feature store, so stored image features and these text features share one space."""

    def __init__(self, spec: VisionEncoderSpec, device: str = "cpu") -> None:
        import open_clip
        import torch

        from tinyemo_core.encoders.vision_openclip import _register_config

        if spec.kind != "open_clip":
            raise ValueError(
                f"CLIPScore needs an open_clip encoder (with its text tower); {spec.model!r} is {spec.kind!r}"
            )
        if spec.config_file:
            _register_config(spec.config_file, spec.model)
        pretrained = spec.pretrained
        if pretrained is not None and Path(pretrained).expanduser().exists():
            pretrained = str(Path(pretrained).expanduser())
        if pretrained is None:
            torch.manual_seed(spec.seed)  # the same seeded init as the image encoder of the feature store
        model, _, self.preprocess = open_clip.create_model_and_transforms(
            spec.model, pretrained=pretrained, device="cpu", pretrained_hf=False
        )
        self.model = model.eval().requires_grad_(False).to(device)
        self.tokenizer = open_clip.get_tokenizer(spec.model)
        self.context_length = int(getattr(self.tokenizer, "context_length", 77))
        self.device = device
        self.name = f"open_clip {spec.model} ({spec.pretrained or f'random init, seed {spec.seed}'})"

    def encode_texts(
        self, texts: Sequence[str], *, prefix: str = PREFIX, batch_size: int = 256
    ) -> np.ndarray:
        """``encode_text`` of ``prefix + text`` (truncated to the context length), not normalised."""
        import torch

        out = []
        with torch.inference_mode():
            for s in range(0, len(texts), batch_size):
                toks = self.tokenizer([prefix + t for t in texts[s : s + batch_size]]).to(self.device)
                out.append(self.model.encode_text(toks).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.text_projection.shape[-1]), np.float32)

    def encode_images(self, paths: Sequence[str | Path], batch_size: int = 64) -> np.ndarray:
        """``encode_image`` of the model's eval transform of each image (the recomputing path)."""
        import torch
        from PIL import Image

        out = []
        with torch.inference_mode():
            for s in range(0, len(paths), batch_size):
                batch = []
                for p in paths[s : s + batch_size]:
                    with Image.open(p) as im:
                        batch.append(self.preprocess(im.convert("RGB")))
                out.append(self.model.encode_image(torch.stack(batch).to(self.device)).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def score_texts(
    scorer: ClipScorer,
    image_feats: np.ndarray,
    candidates: Sequence[str],
    references: Sequence[Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Corpus and per-instance CLIP-S (and RefCLIP-S when ``references`` are given)."""
    cand = scorer.encode_texts(candidates)
    per = clip_s(image_feats, cand)
    out: dict[str, Any] = {
        "clip_model": scorer.name,
        "w": W,
        "prefix": PREFIX,
        "truncation_tokens": scorer.context_length,
        "n": len(per),
        "clip_score": float(per.mean()) if len(per) else None,
        "per_instance": {"clip_score": per.tolist()},
    }
    if references is not None:
        flat = [r for refs in references for r in refs]
        feats = scorer.encode_texts(flat)
        bounds = np.cumsum([0, *[len(r) for r in references]])
        ref = ref_clip_s(per, cand, [feats[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
        out["ref_clip_score"] = float(ref.mean()) if len(ref) else None
        out["per_instance"]["ref_clip_score"] = ref.tolist()
    return out
