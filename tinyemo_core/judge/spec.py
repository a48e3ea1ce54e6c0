"""Typed settings of the generated-answer evaluation (``evaluate_generated:`` in a flows.yaml profile)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tinyemo_core.generate.spec import GenerationSpec, ValidationSpec
from tinyemo_core.judge.prompts import REASONING_PROMPT
from tinyemo_core.judge.recipes import judge_recipe

#: Fields that change how answers are fetched, not which answers: left out of the evaluation fingerprint.
TRANSPORT_FIELDS = frozenset(
    {"base_url", "api_key_env", "max_concurrency", "batch_size", "device", "timeout_s", "max_retries",
     "every_epoch"}  # every_epoch: which other models are judged too, not how this one is
)


class ClipScoreSpec(BaseModel):
    """CLIPScore / RefCLIPScore of free-text answers to ``prompt`` (TinyEmo Table VI)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = REASONING_PROMPT
    max_tokens: int = Field(128, ge=1)
    # JSON {image_id: [reference, ...]} or a LLaVA-format export (its gpt turns); "dataset": the dataset's
    # own human texts (the affection layout's explanations, TinyEmo Table VI); None = CLIP-S only
    references: Literal["dataset"] | Path | None = None
    # the flows.yaml encoder (open_clip, with its text tower) that scores, apart from the feature encoder:
    # Hessel et al. score with ViT-B/32 (`clip-vit-b-32`); None = the profile's encoder (its stored image
    # features are reused when the encoders match)
    encoder: str | None = None
    datasets: list[str] = Field(default_factory=list, description="empty = every evaluated dataset")


class EvaluateGeneratedSpec(BaseModel):
    """Which model answers which prompts, and how the answers are read."""

    model_config = ConfigDict(extra="forbid")

    recipe: Literal["tinyemo", "emovit", "llava-emotic", "llava"]
    model: str = Field(..., min_length=1, description="saved model folder, or the served model id")
    backend: Literal["auto", "transformers", "openai"] = Field(
        "auto", description="auto: a folder -> in-process transformers, else an OpenAI-compatible endpoint"
    )
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = Field(8, ge=1, le=4096)
    batch_size: int = Field(8, ge=1, description="transformers: requests per generate() call")
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(5, ge=0)
    max_tokens: int = Field(128, ge=1)
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # transformers backend: load the model in 4 bits (bitsandbytes NF4; TinyEmo Table VI's inference). Needs a
    # CUDA GPU and bitsandbytes; refused with one line otherwise. Part of the model's identity.
    load_in_4bit: bool = False
    trust_remote_code: bool = False
    datasets: list[str] = Field(default_factory=list, description="empty = the profile's held-in + zero-shot")
    # "auto": the images the projector's evaluation scores (held-in: test split; zero-shot: every image when
    # the dataset's zero_shot_split is "all", else its test split), so both are compared on the same images
    split: str = "test"
    max_images: int | None = Field(None, ge=1, description="per dataset (smoke tests)")
    instructions: list[str] = Field(
        default_factory=list,
        description="instruction templates ({options}/{labels}); empty = the recipe's own; >= 2 adds "
        "instruction sensitivity (EmoVIT §4.3.2)",
    )
    synonyms: bool = True
    several: Literal["wrong", "first"] = "wrong"
    clipscore: ClipScoreSpec | None = None
    # false: no classification prompts, only the clipscore block (TinyEmo Table VI judges free text)
    accuracy: bool = True
    # also judge every epochs/epoch-<k>/ model saved beside `model` (train.save_epoch_models), one cached
    # report each plus a per-epoch table (LLaVA on EMOTIC: "highest mAP ... on the sixth epoch")
    every_epoch: bool = False
    likelihood_map: bool = Field(True, description="llava-emotic + transformers: teacher-forced mAP too")
    answer_prefix: str = Field("", description="llava-emotic: text before the category list in the answer")

    @model_validator(mode="after")
    def _something_to_judge(self) -> EvaluateGeneratedSpec:
        if judge_recipe(self.recipe).free_text and self.accuracy:
            raise ValueError(f"recipe {self.recipe} writes free text (no label to read): set accuracy: false "
                             "and a clipscore: block")
        if not self.accuracy and self.clipscore is None:
            raise ValueError("accuracy: false leaves nothing to judge: add a clipscore: block")
        return self

    def resolved_backend(self) -> str:
        if self.backend != "auto":
            return self.backend
        return "transformers" if Path(self.model).expanduser().is_dir() else "openai"

    def generation_spec(self, max_tokens: int | None = None) -> GenerationSpec:
        """The generation settings the shared runner and backends take: greedy, every answer kept."""
        return GenerationSpec(
            backend=self.resolved_backend(),
            base_url=self.base_url,
            model=self.model,
            api_key_env=self.api_key_env,
            max_concurrency=self.max_concurrency,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            temperature=0.0,
            top_p=1.0,
            max_tokens=max_tokens or self.max_tokens,
            seed=0,
            trust_remote_code=self.trust_remote_code,
            device=self.device,
            dtype=self.dtype,
            # an evaluation scores every answer: only empty answers and request errors fail
            validation=ValidationSpec(
                min_chars=1, reject_truncated=False, require_question_mark=False, refusal_patterns=[]
            ),
        )
