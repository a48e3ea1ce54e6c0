"""Typed configuration of synthetic instruction-data generation (``generation:`` in flows.yaml)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .prompts import EMOVIT_ATTRIBUTES

#: Phrases that mark an answer as a refusal rather than content (matched case-insensitively).
DEFAULT_REFUSALS: tuple[str, ...] = (
    r"\bI(?:'m| am) (?:sorry|unable|not able)\b",
    r"\bI can(?:not|'t) (?:help|assist|provide|see|view|answer)\b",
    r"\bas an AI(?: language)? model\b",
    r"\bI do not have the ability\b",
)


class ValidationSpec(BaseModel):
    """Which answers count as failures (each failure is recorded with its reason, never dropped)."""

    model_config = ConfigDict(extra="forbid")

    min_chars: int = Field(1, ge=0, description="answers shorter than this (after strip) are 'empty'")
    reject_truncated: bool = Field(True, description="reject finish_reason == 'length' (cut at max_tokens)")
    require_question_mark: bool = Field(True, description="generated questions must contain '?'")
    refusal_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_REFUSALS))




#: EmoSet's per-image annotation keys (EmoVIT §3.2's attribute list) with the label as ``emotion``
EMOSET_ATTRIBUTES = ("emotion", "brightness", "colorfulness", "scene", "object", "facial_expression",
                     "human_action")


class CaptionerSpec(BaseModel):
    """The vision model that captions images for EmoVIT data (EmoVIT §4.1: "we initially employ the BLIP2
    model for image captioning, followed by leveraging the GPT-4 API"): only it receives images; the
    profile's ``model`` then writes the question types from the caption + attributes, text only."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["openai", "transformers"] = "transformers"
    model: str = Field(..., min_length=1, description="local folder / hub id (transformers) or served id")
    base_url: str = "http://127.0.0.1:8000/v1"
    model_revision: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    # BLIP-2 captions with no text prompt (the authors' emo/caption.py calls generate({"image": ...})); a chat
    # VLM used instead needs one, e.g. TinyEmo's caption prompt
    prompt: str = ""
    max_tokens: int = Field(64, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0.0, le=2.0)  # LAVIS generate() defaults to beam search, no sampling
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    trust_remote_code: bool = False


class GenerationSpec(BaseModel):
    """Generator backend, sampling, concurrency and which data to generate for."""

    model_config = ConfigDict(extra="forbid")

    # demo: the grounded demo generator (backends/demo_grounded.py), offline, only for the demo images
    backend: Literal["openai", "transformers", "demo"] = "openai"
    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible root, ending in /v1")
    model: str = Field(..., min_length=1, description="served model id (openai) or local path (transformers)")
    model_revision: str | None = Field(
        None, description="weights revision; part of the generator fingerprint"
    )
    api_key_env: str = Field("OPENAI_API_KEY", min_length=1, description="env var holding the API key")
    max_concurrency: int = Field(16, ge=1, le=4096)
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(5, ge=0, le=50)
    backoff_base_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    # openai backend: Bunny pads images to a square with the mean colour before SigLIP; a converted LLaVA
    # server does not, so the client does (docs/generation.md, "Bunny on vLLM").
    pad_to_square: bool = Field(False, description="pad each image to a square with pad_color before sending")
    pad_color: list[Annotated[int, Field(ge=0, le=255)]] = Field(
        default_factory=lambda: [127, 127, 127], min_length=3, max_length=3,
        description="RGB fill; Bunny's int(image_mean * 255), 127 for SigLIP's mean 0.5",
    )
    # Sampling: the paper does not state Bunny's decoding settings; these are ours.
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1, le=32768)
    seed: int = Field(0, ge=0)
    mode: Literal["tinyemo", "emovit"] = "tinyemo"
    conditional: bool = Field(
        False, description="EmoReason export: add 'Important: note that the correct label is <label>.' "
        "(TinyEmo Appendix A-B, conditional reasoning)"
    )
    datasets: list[str] = Field(default_factory=list, description="dataset names to use; empty = all")
    splits: list[str] = Field(default_factory=lambda: ["train"], min_length=1)
    max_images: int | None = Field(None, ge=1, description="cap per run (EmoVIT: 51,200; smoke tests)")
    image_sample: Literal["first", "random"] = Field(
        "first", description="with max_images: the first N by (dataset, image id), or N drawn with `seed` "
        "(ids sort by class in EmoSet, so 'first' would take whole classes)"
    )
    captioner: CaptionerSpec | None = Field(
        None, description="emovit mode: the captioning VLM; `model` then gets text only (EmoVIT §3.2, §4.1)"
    )
    emovit_attributes: list[str] = Field(
        default_factory=lambda: list(EMOVIT_ATTRIBUTES), min_length=1,
        description="EmoSet attributes sent with the caption, in this order (EmoVIT §3.2; scene optional)",
    )
    retry_failed: bool = Field(False, description="re-send requests whose cached answer failed validation")
    counterfactual_conditions: int = Field(
        0, ge=0, description="tinyemo mode, conditional: per image this many extra EmoReason records whose "
        "conditional line names another label of the set, with the answer the generator writes for that "
        "label (demo: teaches a tiny reasoner to follow the label it is given instead of memorising its "
        "few images; docs/generation.md)",
    )
    label_sets: dict[str, list[str]] = Field(
        default_factory=dict, description="dataset -> label list for the EmoReason 'Labels: [...]'"
    )
    # transformers backend only
    trust_remote_code: bool = False
    chat_format: Literal["auto", "bunny"] = Field("auto", description="'bunny': Bunny's own prompt format")
    device: str = Field("auto", description="'auto', 'cpu', 'cuda', 'cuda:1', ...")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    validation: ValidationSpec = Field(default_factory=ValidationSpec)

    @field_validator("emovit_attributes")
    @classmethod
    def _known_attributes(cls, names: list[str]) -> list[str]:
        bad = [n for n in names if n not in EMOSET_ATTRIBUTES]
        if bad:
            raise ValueError(f"unknown EmoSet attributes {bad}; choose from {list(EMOSET_ATTRIBUTES)}")
        return names

    @model_validator(mode="after")
    def _captioner_only_for_emovit(self) -> GenerationSpec:
        if self.captioner is not None and self.mode != "emovit":
            raise ValueError("captioner is for mode: emovit (TinyEmo's generator sees the image itself)")
        return self
