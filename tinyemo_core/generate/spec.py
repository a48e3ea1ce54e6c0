"""Typed configuration of synthetic instruction-data generation (``generation:`` in flows.yaml)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    max_images: int | None = Field(None, ge=1, description="cap per run (smoke tests)")
    retry_failed: bool = Field(False, description="re-send requests whose cached answer failed validation")
    label_sets: dict[str, list[str]] = Field(
        default_factory=dict, description="dataset -> label list for the EmoReason 'Labels: [...]'"
    )
    # transformers backend only
    trust_remote_code: bool = False
    chat_format: Literal["auto", "bunny"] = Field("auto", description="'bunny': Bunny's own prompt format")
    device: str = Field("auto", description="'auto', 'cpu', 'cuda', 'cuda:1', ...")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
