"""The family builders of the tiny-checkpoint factory (one function per released checkpoint family, each
writing the released on-disk format into ``out`` and returning what it scaled or stood in for);
:mod:`tinyemo_core.tinymodels.build` names them in its ``BUILDERS`` table."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from .facts import RELEASED
from .tokenizer import synthetic_tokenizer


def _save(model, out: Path) -> None:
    model.save_pretrained(out, safe_serialization=True)


def _jitter(model, seed: int, scale: float = 0.02) -> None:
    """Perturb every parameter (norms and biases too) so no tensor keeps a trivial initial value."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


def _llama_ids():
    return lambda length, extra=None: synthetic_tokenizer(
        length,
        {0: "<unk>", 1: "<s>", 2: "</s>", **(extra or {})},
        {"bos": "<s>", "eos": "</s>", "unk": "<unk>", **({"pad": extra[max(extra)]} if extra else {})},
        add_bos=True,
    )


def tinyllama(out: Path, seed: int) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    f = RELEASED["tinyllama"].config
    cfg = LlamaConfig(
        **{k: v for k, v in f.items() if k not in ("architectures", "model_type")}
        | {
            "hidden_size": 64,
            "intermediate_size": 176,
            "num_hidden_layers": 2,
            "num_attention_heads": 8,
            "num_key_value_heads": 1,
        }
    )
    torch.manual_seed(seed)
    _save(LlamaForCausalLM(cfg), out)
    _llama_ids()(32000).save_pretrained(out)
    return {"scaled": "hidden 2048->64, layers 22->2, heads 32->8, kv heads 4->1 (8 per group kept)"}


def phi2(out: Path, seed: int) -> dict:
    import torch
    from transformers import PhiConfig, PhiForCausalLM

    f = RELEASED["phi-2"].config
    cfg = PhiConfig(
        **{k: v for k, v in f.items() if k not in ("architectures", "model_type")}
        | {
            "hidden_size": 40,
            "intermediate_size": 160,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
        }
    )
    torch.manual_seed(seed)
    model = PhiForCausalLM(cfg)
    _jitter(model, seed)
    _save(model, out)
    eot = "<|endoftext|>"
    synthetic_tokenizer(50295, {50256: eot}, {"bos": eot, "eos": eot, "unk": eot}).save_pretrained(out)
    return {"scaled": "hidden 2560->40 (head dim 80->10: 4 of 10 dims rotate), layers 32->2, heads 32->4"}


def openelm(family: str) -> Callable[[Path, int], dict]:
    def build(out: Path, seed: int) -> dict:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        f = RELEASED[family].config
        cfg = LlamaConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=8,
            vocab_size=f["vocab_size"],
            bos_token_id=f["bos_token_id"],
            eos_token_id=f["eos_token_id"],
            tie_word_embeddings=f["share_input_output_layers"],
            max_position_embeddings=f["max_context_length"],
            rope_theta=float(f["rope_freq_constant"]),
        )
        torch.manual_seed(seed)
        _save(LlamaForCausalLM(cfg), out)
        _llama_ids()(32000).save_pretrained(out)
        return {
            "stand_in": (
                "Llama-shaped: OpenELM's modelling code lives on the hub only. Kept: tied input/output "
                "embeddings, vocabulary 32000 with <unk>/<s>/</s> at 0/1/2, rope theta, 4 query heads per "
                "kv head, query width half the model width (qkv_multipliers[0] 0.5). Not kept: per-layer "
                "head counts and FFN widths, q/k RMS normalisation, OpenELM tensor names "
                "(transformer.token_embeddings...)"
            )
        }

    return build


def siglip(out: Path, seed: int) -> dict:
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    f = RELEASED["siglip-so400m"]
    vision = f.config["vision_config"] | {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 3,
        "num_attention_heads": 2,
    }
    text = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "vocab_size": 32000,
        "max_position_embeddings": 64,
        "pad_token_id": 1,
        "bos_token_id": 1,
        "eos_token_id": 1,
    }
    torch.manual_seed(seed)
    model = SiglipModel(SiglipConfig(vision_config=vision, text_config=text))
    _jitter(model, seed)
    _save(model, out)
    size = f.config["vision_config"]["image_size"]
    SiglipImageProcessor(
        size={"height": size, "width": size},
        image_mean=f.tokenizer["image_mean"],
        image_std=f.tokenizer["image_std"],
    ).save_pretrained(out)
    return {"scaled": "vision hidden 1152->32, layers 27->3; text tower 1 layer (unused by the project)"}


def clip_hf(out: Path, seed: int) -> dict:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    f = RELEASED["clip-vit-l-14"].config
    small = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 3,
        "num_attention_heads": 2,
        "projection_dim": 16,
    }
    cfg = CLIPConfig(
        vision_config=f["vision_config"] | small, text_config=f["text_config"] | small, projection_dim=16
    )
    torch.manual_seed(seed)
    _save(CLIPModel(cfg), out)
    size = f["vision_config"]["image_size"]
    CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    ).save_pretrained(out)
    return {"scaled": "vision 1024x24 -> 32x3, text 768x12 -> 32x3, projection 768->16"}


def _openclip(out: Path, seed: int, family: str, name: str, scaled: str) -> dict:
    """A tiny open_clip model keeping the released config's structure (quick_gelu, patch size, image
    size, heads' width), saved as safetensors with its model config and preprocessing (open_clip's
    local-file route)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    f = RELEASED[family].config
    cfg = {
        "embed_dim": 16,
        "quick_gelu": f["quick_gelu"],
        "vision_cfg": f["vision_cfg"] | {"layers": 2, "width": 32, "head_width": 16},
        "text_cfg": f["text_cfg"] | {"width": 32, "heads": 2, "layers": 1},
    }
    config_file = out / f"{name}.json"
    config_file.write_text(json.dumps(cfg, indent=2))
    if name not in open_clip.list_models():
        open_clip.add_model_config(config_file)
    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained=None)
    weights = out / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
    preprocess = {"mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD)}
    (out / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": cfg, "preprocess_cfg": preprocess}, indent=2)
    )
    return {
        "open_clip": {
            "model": name,
            "config_file": str(config_file.resolve()),
            "pretrained": str(weights.resolve()),
        },
        "scaled": scaled,
    }


def openclip(out: Path, seed: int) -> dict:
    return _openclip(out, seed, "openclip-vit-l-14", "tinyemo-tiny-ViT-L-14",
                     "vision 1024x24 -> 32x2, text 768x12 -> 32x1, embed 768->16")


#: llava-hf/llava-1.5-7b-hf's chat_template.json (``USER: <image>\n... ASSISTANT:``, no system text)
LLAVA_15_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}"
    "{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', "
    "'equalto', 'image') %}{{ '<image>\\n' }}{% endfor %}{# Render all text next #}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def llava(out: Path, seed: int) -> dict:
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    f = RELEASED["llava-1.5"].config
    tv = f["text_config"]
    text = LlamaConfig(
        **{k: v for k, v in tv.items() if k != "model_type"}
        | {
            "hidden_size": 32,
            "intermediate_size": 86,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "pad_token_id": f["pad_token_id"],
        }
    )
    vision = CLIPVisionConfig(
        **{k: v for k, v in f["vision_config"].items() if k != "model_type"}
        | {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 3,
            "num_attention_heads": 2,
            "projection_dim": 16,
        }
    )
    keep = (
        "image_token_index",
        "pad_token_id",
        "projector_hidden_act",
        "vision_feature_layer",
        "vision_feature_select_strategy",
        "tie_word_embeddings",
    )
    cfg = LlavaConfig(
        vision_config=vision,
        text_config=text,
        **{k: f[k] for k in keep},
        image_seq_length=(vision.image_size // vision.patch_size) ** 2,
    )
    torch.manual_seed(seed)
    _save(LlavaForConditionalGeneration(cfg), out)
    tok = _llama_ids()(32002, {32000: "<image>", 32001: "<pad>"})
    size = vision.image_size
    LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": size}, crop_size={"height": size, "width": size}
        ),
        tokenizer=tok,
        patch_size=vision.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_15_CHAT_TEMPLATE,  # the released processor ships one (chat_template.json)
    ).save_pretrained(out)
    return {"scaled": "text 4096x32 -> 32x2, vision 1024x24 -> 32x3"}


def instructblip(out: Path, seed: int) -> dict:
    import torch
    from transformers import (
        BertTokenizerFast,
        BlipImageProcessor,
        InstructBlipConfig,
        InstructBlipForConditionalGeneration,
        InstructBlipProcessor,
    )

    f = RELEASED["instructblip-vicuna"].config
    vision = f["vision_config"] | {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    }
    qformer = f["qformer_config"] | {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "encoder_hidden_size": 32,
    }
    text = {k: v for k, v in f["text_config"].items()} | {
        "hidden_size": 32,
        "intermediate_size": 86,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    }
    tok = _llama_ids()(32001, {32000: "<image>"})
    cfg = InstructBlipConfig(
        vision_config=vision,
        qformer_config=qformer,
        text_config=text,
        num_query_tokens=f["num_query_tokens"],
        image_token_index=32000,
        use_decoder_only_language_model=True,
    )
    torch.manual_seed(seed)
    model = InstructBlipForConditionalGeneration(cfg)
    with torch.no_grad():
        model.query_tokens.normal_(0.0, 0.02)
    _save(model, out)
    words = [
        "[PAD]",
        "[unused0]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "[UNK]",
        *sorted(
            {
                w.lower().strip(".,:?\n-")
                for line in __import__("tinyemo_core.tinymodels.tokenizer", fromlist=["CORPUS"]).CORPUS
                for w in line.split()
                if w.strip(".,:?\n-")
            }
        ),
    ]
    vocab = out / "qformer_vocab.txt"
    vocab.write_text("\n".join(words) + "\n")
    qtok = BertTokenizerFast(vocab_file=str(vocab))
    qtok.add_special_tokens({"bos_token": "[DEC]"})
    vocab.unlink()
    size = vision["image_size"]
    InstructBlipProcessor(
        BlipImageProcessor(size={"height": size, "width": size}),
        tok,
        qtok,
        num_query_tokens=f["num_query_tokens"],
    ).save_pretrained(out)
    return {
        "stand_in": "Q-Former tokenizer: a small WordPiece vocabulary (BERT's 30,523 ids are not kept); "
        "<image> added at 32000 (the hub's newer processor revision adds it too)",
        "scaled": "vision 1408x39 -> 32x2, Q-Former 768x12 -> 32x2, text 4096x32 -> 32x2",
    }


def openclip_b32(out: Path, seed: int) -> dict:
    """Tiny open_clip ViT-B/32 (CLIPScore's encoder, issue 20)."""
    return _openclip(out, seed, "openclip-vit-b-32", "tinyemo-tiny-ViT-B-32",
                     "vision 768x12 -> 32x2, text 512x12 -> 32x1, embed 512->16")


def blip2(out: Path, seed: int) -> dict:
    """Tiny BLIP-2 OPT (added by helper E, issue 20: EmoVIT's captioner), built like _instructblip."""
    import torch
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessor,
    )

    f = RELEASED["blip2-opt"].config
    small = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
    vision = f["vision_config"] | small | {"intermediate_size": 64}
    qformer = f["qformer_config"] | small | {"intermediate_size": 64, "encoder_hidden_size": 32}
    text = f["text_config"] | {"hidden_size": 32, "ffn_dim": 64, "num_hidden_layers": 2,
                               "num_attention_heads": 2, "word_embed_proj_dim": 32,
                               "bos_token_id": 2, "pad_token_id": 1}
    cfg = Blip2Config(vision_config=vision, qformer_config=qformer, text_config=text,
                      num_query_tokens=f["num_query_tokens"], image_token_index=f["image_token_index"])
    torch.manual_seed(seed)
    model = Blip2ForConditionalGeneration(cfg)
    with torch.no_grad():
        model.query_tokens.normal_(0.0, 0.02)
    _save(model, out)
    tok = synthetic_tokenizer(
        50266, {1: "<pad>", 2: "</s>", 3: "<unk>", 50118: "\n", 50265: "<image>"},
        {"bos": "</s>", "eos": "</s>", "unk": "<unk>", "pad": "<pad>"}, add_bos=True,
    )
    size = f["vision_config"]["image_size"]
    Blip2Processor(BlipImageProcessor(size={"height": size, "width": size}), tok,
                   num_query_tokens=f["num_query_tokens"]).save_pretrained(out)
    return {"scaled": "vision 1408x39 -> 32x2, Q-Former 768x12 -> 32x2, OPT 2560x32 -> 32x2",
            "stand_in": "OPT tokenizer: a byte-level BPE of the released length with </s>, <pad>, <unk>, "
            "newline (eos 50118) and <image> at their ids"}
