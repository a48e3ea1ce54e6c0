"""Typed settings of fine-tuning: the shared trainer's arguments and the ``reasoning:`` block of flows.yaml.

Stage defaults: stage 1 "pretrain" trains the connector only, stage 2 "finetune" the connector + LLM (TinyEmo
§III-C names the two stages and what each trains). The paper gives no stage hyper-parameters: lr 1e-3 / 2e-5,
1 epoch, 3 % warm-up and a cosine schedule are LLaVA-1.5's / TinyLLaVA Factory's defaults, used here as ours.
No torch import here: flows.yaml validation stays cheap.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tinyemo_core.finetune.recipes import RECIPE_INFO

Stage = Literal["pretrain", "finetune"]
STAGES: tuple[Stage, ...] = ("pretrain", "finetune")


class LoraSpec(BaseModel):
    """LoRA / QLoRA through PEFT (docs/reasoning.md, "LoRA"). Adapters go on the language model's linear
    layers the recipe marks trainable; everything else the recipe marks trainable (the connector) is trained
    fully and saved with the adapter; the final model is saved merged (plain transformers layout)."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | str = "all-linear"  # or module-name suffixes, e.g. ["q_proj", "v_proj"]
    quantize_4bit: bool = False  # QLoRA via bitsandbytes when on CUDA; clear error otherwise


class TrainArgs(BaseModel):
    """What :func:`tinyemo_core.finetune.trainer.train_model` passes to the HF Trainer."""

    model_config = ConfigDict(extra="forbid")

    learning_rate: float = Field(..., gt=0)
    num_train_epochs: float = Field(1.0, gt=0)
    max_steps: int = -1  # > 0 overrides epochs (tests/demo)
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0)
    lr_scheduler_type: str = "cosine"
    per_device_train_batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    weight_decay: float = Field(0.0, ge=0.0)
    save_steps: int = Field(50, ge=1)
    save_total_limit: int = Field(2, ge=1)
    logging_steps: int = Field(1, ge=1)
    seed: int = 0
    # torch intra-op threads while training (None: torch's default). 1 for tiny models on a shared CPU: their
    # ops are too small to split, and 2 spinning threads on busy cores cost ~10x the CPU per step (measured)
    cpu_threads: int | None = Field(None, ge=1)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 on CUDA with bf16, else fp32
    gradient_checkpointing: bool = False
    lora: LoraSpec | None = None
    deepspeed: str | None = None  # path to a ZeRO json, passed to TrainingArguments
    # a loadable model (+ processor) after every epoch under <stage>/epochs/epoch-<k>/, to judge each epoch
    # (LLaVA on EMOTIC: "highest mAP ... on the sixth epoch"); costs one model's disk space per epoch
    save_epoch_models: bool = False


class TinyModelSpec(BaseModel):
    """A seeded random CLIP-vision + Llama LLaVA built offline in seconds (tests, demo, benchmarks)."""

    model_config = ConfigDict(extra="forbid")

    hidden: int = Field(32, ge=8)
    layers: int = Field(2, ge=1)
    vision_hidden: int = Field(32, ge=8)
    vision_layers: int = Field(2, ge=2)  # >= 2: the patch tokens come from hidden_states[-2]
    image_size: int = Field(32, ge=8)
    patch: int = Field(8, ge=2)
    seed: int = 0
    # bpe: 512-piece byte-level BPE (any text); words: the demo's word-level vocabulary (finetune/tiny.py):
    # shorter sequences, one token per label word, readable answers on the demo
    tokenizer: Literal["bpe", "words"] = "bpe"


class ModelSpec(BaseModel):
    """Which model to assemble. ``vision``/``llm`` are hub ids or local folders (real weights; a fresh
    ``mlp2x_gelu`` connector between them), ``source`` a complete LLaVA-layout checkpoint to start from
    (llava-emotic), ``tiny`` a random tiny model (then the other fields only name it)."""

    model_config = ConfigDict(extra="forbid")

    vision: str | None = None  # e.g. openai/clip-vit-large-patch14 (TinyEmo) or a local folder
    llm: str | None = None  # e.g. TinyLlama/TinyLlama-1.1B-Chat-v1.0, apple/OpenELM-..., microsoft/phi-2
    source: str | None = None  # e.g. llava-hf/llava-1.5-7b-hf (starts from its connector too)
    revision: str | None = None
    tiny: TinyModelSpec | None = None
    connector: Literal["mlp2x_gelu"] = "mlp2x_gelu"  # TinyLLaVA's 2-layer MLP == LLaVA's projector
    pad_token: str | None = None  # used when the LLM tokenizer has none (default: its unk token)
    max_length: int = Field(2048, ge=16)  # longer records are cut at the end (the answer's tail)
    trust_remote_code: bool = False  # OpenELM ships its modelling code on the hub


class StageSpec(BaseModel):
    """One training stage: which export it reads and how it trains."""

    model_config = ConfigDict(extra="forbid")

    export: str  # export file stem under the export folder, e.g. "pretrain_train", "emoreason_train"
    train: TrainArgs
    shuffle_records: bool = True  # §III-A: tasks in random order (seeded by train.seed)
    max_records: int | None = Field(None, ge=1)  # first N after shuffling (demo)
    # emovit: which EmoVIT record kinds train (the data-type ablation: [categorical] -> + conversation ->
    # + reasoning, EmoVIT §4.3.1 / Table 2); None = every kind in the export
    record_kinds: list[Literal["categorical", "conversation", "reasoning"]] | None = Field(None, min_length=1)


def _pretrain() -> StageSpec:
    return StageSpec(export="pretrain_train", train=TrainArgs(learning_rate=1e-3, warmup_ratio=0.03))


def _finetune() -> StageSpec:
    return StageSpec(export="emoreason_train", train=TrainArgs(learning_rate=2e-5, warmup_ratio=0.03))


class ReasonSpec(BaseModel):
    """Conditional-reasoning inference (§III-C, Appendix A-B)."""

    model_config = ConfigDict(extra="forbid")

    condition: bool = True  # insert "Important: note that the correct label is <label>."
    backend: Literal["transformers", "openai"] = "transformers"
    base_url: str = "http://127.0.0.1:8000/v1"  # openai backend (vLLM serving the saved model)
    served_model: str | None = None  # openai backend: the served model id
    max_new_tokens: int = Field(128, ge=1)
    batch_size: int = Field(8, ge=1)
    split: str = "test"
    max_images: int | None = Field(None, ge=1)  # first N test images (demo)
    compare_images: int = Field(3, ge=0)  # Fig. 9: normal vs conditional for this many images


class ReasoningSpec(BaseModel):
    """The ``reasoning:`` block of a profile: recipe, model, both stages, inference."""

    model_config = ConfigDict(extra="forbid")

    recipe: str = "tinyemo"
    model: ModelSpec
    stages: list[Stage] = Field(default_factory=lambda: list(STAGES), min_length=1)
    pretrain: StageSpec = Field(default_factory=_pretrain)
    finetune: StageSpec = Field(default_factory=_finetune)
    cached_patches: Literal["auto", "on", "off"] = "auto"  # auto: on when the patch store is complete
    # the flows.yaml encoder whose patch-token store (features/<encoder>.patches/<dataset>/, extracted with
    # patch_tokens: true) holds the reasoner's vision-tower outputs; None = always run the live ViT
    patch_encoder: str | None = None
    # TinyEmo Fig. 9 compares two TRAINED models: "normal" (trained to classify and reason, no label in the
    # prompt) vs "conditional" (the stage-2 model above). When set, a second stage-2 model is trained from the
    # same stage-1 model on this export (default: the EmoReason records without the conditional line) and
    # comparison.md puts its unconditioned answers beside the conditional model's (docs/reasoning.md).
    normal: StageSpec | None = None
    reason: ReasonSpec = ReasonSpec()

    def stage(self, name: Stage) -> StageSpec:
        return self.pretrain if name == "pretrain" else self.finetune

    @field_validator("recipe")
    @classmethod
    def _known_recipe(cls, name: str) -> str:
        if name not in RECIPE_INFO:
            raise ValueError(f"unknown recipe {name!r}; valid recipes: {', '.join(sorted(RECIPE_INFO))}")
        return name

    @model_validator(mode="after")
    def _recipe_has_the_stages(self) -> ReasoningSpec:
        """The stages and record kinds asked for are ones the recipe defines (names listed in the error)."""
        info = RECIPE_INFO[self.recipe]
        if bad := [s for s in self.stages if s not in info.stages]:
            raise ValueError(f"stages {bad}: the {self.recipe} recipe has the stages {list(info.stages)}")
        for name in self.stages:
            kinds = self.stage(name).record_kinds
            if kinds and not info.record_kinds:
                having = ", ".join(n for n, i in RECIPE_INFO.items() if i.record_kinds)
                raise ValueError(f"{name}.record_kinds: the {self.recipe} recipe has no record kinds to "
                                 f"select (only {having} do)")
            if bad := sorted(set(kinds or ()) - set(info.record_kinds)):
                raise ValueError(f"{name}.record_kinds {bad}: choose from {list(info.record_kinds)}")
        return self


def conditional_mismatch(reasoning: ReasoningSpec | None, generation: object | None) -> str | None:
    """Why the stage-2 TinyEmo model would be trained on one prompt and run with another, or None.

    Conditional reasoning (TinyEmo §III-C, Eq. 5; Appendix A-B) runs the model with "Important: note that the
    correct label is <label>." in the prompt; its EmoReason training records carry that line only when
    ``generation.conditional`` is true (``emoreason_*.json``; ``emoreason_normal_*.json`` never do)."""
    if reasoning is None or not RECIPE_INFO[reasoning.recipe].conditional_reasoning:
        return None
    if "finetune" not in reasoning.stages:
        return None
    if generation is None or getattr(generation, "mode", "tinyemo") != "tinyemo":
        return None  # exports made elsewhere: nothing to compare against
    export = reasoning.finetune.export
    if not export.startswith("emoreason"):
        return None
    trained = bool(getattr(generation, "conditional", False)) and not export.startswith("emoreason_normal")
    if trained == reasoning.reason.condition:
        return None
    if reasoning.reason.condition:
        return (f"reasoning.reason.condition is true but the stage-2 export {export!r} has no "
                "conditional-reasoning line: the model would be trained 'normal' and run 'conditional'. Set "
                "generation.conditional: true (TinyEmo §III-C, Appendix A-B) or reasoning.reason.condition: "
                "false")
    return (f"reasoning.reason.condition is false but the stage-2 export {export!r} carries the "
            "conditional-reasoning line; train on emoreason_normal_<split> or set "
            "reasoning.reason.condition: true")
