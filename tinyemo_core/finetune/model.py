"""Assemble the reasoning VLM in the transformers LLaVA layout (TinyEmo §III-C, Fig. 3).

``LlavaForConditionalGeneration``: a frozen CLIP vision tower whose patch tokens are ``hidden_states[-2]``
without CLS (``vision_feature_layer=-2``, ``vision_feature_select_strategy="default"``, as LLaVA-1.5 and
TinyLLaVA do), a fresh ``mlp2x_gelu`` connector (LLaVA's ``multi_modal_projector`` is exactly
Linear-GELU-Linear with bias: TinyLLaVA's ``mlp2x_gelu``) and a causal LLM. ``save_pretrained`` output
loads in plain transformers, TRL and vLLM (``vllm serve <dir>``) without our code.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import torch

from tinyemo_core.data.taxonomy import TAXONOMIES
from tinyemo_core.finetune.spec import ModelSpec, TinyModelSpec
from tinyemo_core.finetune.tiny import word_tokenizer
from tinyemo_core.generate import prompts as P

IMAGE_TOKEN = "<image>"
#: LLaVA-1.5 / TinyLLaVA "v1" conversation (vicuna style), the format training and inference share.
SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
CHAT_TEMPLATE = (
    "{{ bos_token }}" + SYSTEM + "{% for m in messages %}"
    "{% if m['role'] == 'user' %} USER: {% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>\n{% elif c['type'] == 'text' %}"
    "{{ c['text'] }}{% endif %}{% endfor %}{% endif %} ASSISTANT:"
    "{% else %} {% if m['content'] is string %}{{ m['content'] }}{% else %}{{ m['content'][0]['text'] }}"
    "{% endif %}{{ eos_token }}{% endif %}{% endfor %}"
)


def _ref(name: str) -> str:
    p = Path(name).expanduser()
    return str(p) if p.exists() else name


def _tiny_corpus() -> list[str]:
    texts = [v for k, v in vars(P).items() if k.isupper() and isinstance(v, str)]
    words = sorted({w for t in TAXONOMIES.values() for w in (t.labels or ())})
    return [SYSTEM, "USER: ASSISTANT: Reasoning: Predicted Label:", " ".join(words), *texts]


def tiny_tokenizer(vocab_size: int = 512):
    """A byte-level BPE tokenizer trained in milliseconds on the prompt texts and label words: offline,
    deterministic, exact round trip, any text encodable; ``<image>``, ``<s>``, ``</s>``, ``<pad>``, ``<unk>``.
    A small vocabulary keeps the tiny model's output layer (and so each training step) cheap."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<pad>", "<unk>", "<s>", "</s>", IMAGE_TOKEN]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_tiny_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=[IMAGE_TOKEN],
    )


def _processor(image_processor, tokenizer, patch: int):
    from transformers import LlavaProcessor

    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
        num_additional_image_tokens=1,
    )


def _llava_config(vision_config, text_config, image_token_id: int):
    from transformers import LlavaConfig

    return LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=image_token_id,
        projector_hidden_act="gelu",
        multimodal_projector_bias=True,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_seq_length=(vision_config.image_size // vision_config.patch_size) ** 2,
    )


def build_tiny(tiny: TinyModelSpec) -> tuple[Any, Any]:
    """A seeded random CLIP-vision + Llama LLaVA and its processor (fp32, CPU)."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaForConditionalGeneration

    if tiny.tokenizer == "words":
        tok = word_tokenizer()
    else:
        tok = tiny_tokenizer()
    vision = CLIPVisionConfig(
        hidden_size=tiny.vision_hidden,
        intermediate_size=2 * tiny.vision_hidden,
        num_hidden_layers=tiny.vision_layers,
        num_attention_heads=2,
        image_size=tiny.image_size,
        patch_size=tiny.patch,
        projection_dim=tiny.vision_hidden,
    )
    text = LlamaConfig(
        hidden_size=tiny.hidden,
        intermediate_size=2 * tiny.hidden,
        num_hidden_layers=tiny.layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=len(tok),
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(tiny.seed)
    model = LlavaForConditionalGeneration(_llava_config(vision, text, tok.convert_tokens_to_ids(IMAGE_TOKEN)))
    _generation_defaults(model, tok)
    size = {"height": tiny.image_size, "width": tiny.image_size}
    image_processor = CLIPImageProcessor(size={"shortest_edge": tiny.image_size}, crop_size=size)
    return model, _processor(image_processor, tok, tiny.patch)


def _generation_defaults(model, tok) -> None:
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.do_sample = False


def ensure_pad_token(tok, pad_token: str | None = None, *, what: str = "tokenizer") -> None:
    """Give ``tok`` a pad token: ``pad_token`` if set, else its unk token (TinyLLaVA's choice for Llama);
    raise a clear error when it has neither."""
    if pad_token is not None:
        tok.add_special_tokens({"pad_token": pad_token})
    elif tok.pad_token_id is None:
        if tok.unk_token is None:
            raise ValueError(
                f"{what} has no pad token and no unk token to pad with; set reasoning.model."
                "pad_token (e.g. '<pad>', added to the vocabulary)"
            )
        tok.pad_token = tok.unk_token


def build_from_parts(spec: ModelSpec) -> tuple[Any, Any]:
    """Real weights: a CLIP vision tower and a causal LLM by hub id or local folder, fresh connector.

    The LLM's vocabulary gains ``<image>`` (embeddings resized); the pad token is set by
    :func:`ensure_pad_token`. bf16/fp32 is the trainer's choice (weights load in fp32 here).
    """
    from transformers import (
        AutoConfig,
        AutoImageProcessor,
        AutoModelForCausalLM,
        AutoTokenizer,
        CLIPVisionModel,
        LlavaForConditionalGeneration,
    )

    vision_ref, llm_ref = _ref(spec.vision), _ref(spec.llm)
    try:
        tower = CLIPVisionModel.from_pretrained(vision_ref)
        image_processor = AutoImageProcessor.from_pretrained(vision_ref)
        tok = AutoTokenizer.from_pretrained(
            llm_ref, revision=spec.revision, trust_remote_code=spec.trust_remote_code
        )
        llm = AutoModelForCausalLM.from_pretrained(
            llm_ref, revision=spec.revision, trust_remote_code=spec.trust_remote_code
        )
    except OSError as exc:
        raise RuntimeError(
            f"could not load reasoning model parts vision={spec.vision!r} llm={spec.llm!r}: {exc}."
            " Offline? Download them once and set reasoning.model.vision/llm to the local "
            "folders (config.json + weights + tokenizer / preprocessor_config.json)"
        ) from exc
    ensure_pad_token(tok, spec.pad_token, what=f"tokenizer of {spec.llm!r}")
    tok.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    text_config = AutoConfig.from_pretrained(llm_ref, trust_remote_code=spec.trust_remote_code)
    text_config.vocab_size = len(tok)
    config = _llava_config(tower.config, text_config, tok.convert_tokens_to_ids(IMAGE_TOKEN))
    llm.resize_token_embeddings(len(tok))
    model = LlavaForConditionalGeneration(config)
    model.model.vision_tower.load_state_dict(tower.state_dict())
    model.model.language_model.load_state_dict(llm.get_decoder().state_dict())
    model.lm_head.load_state_dict(llm.get_output_embeddings().state_dict())
    _generation_defaults(model, tok)
    return model, _processor(image_processor, tok, tower.config.patch_size)


def build_from_source(spec: ModelSpec) -> tuple[Any, Any]:
    """A complete LLaVA-layout checkpoint (e.g. ``llava-hf/llava-1.5-7b-hf``), connector included."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    ref = _ref(spec.source)
    try:
        model = LlavaForConditionalGeneration.from_pretrained(ref, revision=spec.revision)
        processor = AutoProcessor.from_pretrained(ref, revision=spec.revision)
    except OSError as exc:
        raise RuntimeError(
            f"could not load LLaVA checkpoint {spec.source!r}: {exc}. Offline? Download it "
            "once and set the model source to the local folder"
        ) from exc
    ensure_pad_token(processor.tokenizer, spec.pad_token, what=f"tokenizer of {spec.source!r}")
    return model, processor


def build_reasoning_model(spec: ModelSpec) -> tuple[Any, Any]:
    """``(LlavaForConditionalGeneration, LlavaProcessor)`` for ``spec`` (tiny, from a source, or parts)."""
    if spec.tiny is not None:
        return build_tiny(spec.tiny)
    if spec.source:
        return build_from_source(spec)
    if not (spec.vision and spec.llm):
        raise ValueError("reasoning.model needs tiny:, source:, or both vision: and llm:")
    return build_from_parts(spec)


def image_token_count(processor) -> int:
    """How many ``<image>`` placeholders one image expands to (patch tokens, CLS dropped)."""
    crop = processor.image_processor.crop_size or processor.image_processor.size
    h, w = crop["height"], crop["width"]
    n = (h // processor.patch_size) * (w // processor.patch_size) + processor.num_additional_image_tokens
    return n - 1 if processor.vision_feature_select_strategy == "default" else n


def _cached_image_features(
    self,
    pixel_values,
    vision_feature_layer=None,
    vision_feature_select_strategy=None,
    image_sizes=None,
    **kwargs,
):
    """``LlavaModel.get_image_features`` for pre-computed patch tokens: ``pixel_values`` holds
    ``hidden_states[-2][:, 1:]`` of the same tower (N, tokens, width); only the connector runs."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    if pixel_values.dim() != 3:
        raise ValueError(
            f"cached patch features must be (batch, tokens, width), got {tuple(pixel_values.shape)}"
        )
    dtype = self.multi_modal_projector.linear_1.weight.dtype
    feats = self.multi_modal_projector(pixel_values.to(dtype))
    return BaseModelOutputWithPooling(pooler_output=list(feats))


def use_cached_patches(model, on: bool = True):
    """Make ``model`` read patch tokens from ``pixel_values`` (cached) instead of running the ViT; the
    weights and saved layout are unchanged (the vision tower stays, frozen, for live inference)."""
    inner = (
        model.model if hasattr(model, "model") and hasattr(model.model, "multi_modal_projector") else model
    )
    if on:
        inner.get_image_features = types.MethodType(_cached_image_features, inner)
    elif "get_image_features" in vars(inner):
        del inner.get_image_features
    return model
