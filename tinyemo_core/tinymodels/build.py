"""Build tiny same-family checkpoints: the released on-disk format and every released fact except width and
depth (facts.py), with seeded random weights, offline, in about a second each.

``build_tiny(family, out_dir)`` writes the folder (``config.json``, weights, tokenizer/processor as the
release ships them) plus ``tinyemo_tiny.json`` (family, facts source, stand-in notes, and for open_clip the
``model``/``config_file``/``pretrained`` values a profile's encoder entry needs). ``family_for(ref)`` maps a
hub id, a flows.yaml model name or an open_clip model name onto a family.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from .facts import RELEASED
from .tokenizer import synthetic_tokenizer

MARKER = "tinyemo_tiny.json"
BUILDER_VERSION = "1"

#: flows.yaml names and open_clip model names -> family (hub ids are matched through facts.RELEASED).
ALIASES = {
    "tinyllama-1.1b": "tinyllama",
    "phi-2": "phi-2",
    "openelm-270m": "openelm-270m",
    "openelm-450m": "openelm-450m",
    "clip-vit-l-14": "openclip-vit-l-14",
    "vit-l-14": "openclip-vit-l-14",
    "vit-l-14-quickgelu": "openclip-vit-l-14",
    "bunny-v1_0-3b": "bunny",
    "siglip-so400m-patch14-384": "siglip-so400m",
    "vit-b-32": "openclip-vit-b-32",
    "vit-b-32-quickgelu": "openclip-vit-b-32",
    "blip2-opt-2.7b": "blip2-opt",
}


def family_for(model_ref: str) -> str | None:
    """The tiny family of a hub id (``owner/name``, optional ``@revision``), a flows.yaml model name or an
    open_clip model name; None when no family matches (callers decide what that means)."""
    ref = str(model_ref).strip().split("@", 1)[0].rstrip("/")
    low = ref.lower()
    for family, rel in RELEASED.items():
        if any(low == h.lower() for h in rel.hub_ids):
            return family
    if low in ALIASES:
        return ALIASES[low]
    if "/" in low and low.split("/")[-1] in ALIASES:  # e.g. /models/bunny-v1_0-3b
        return ALIASES[low.split("/")[-1]]
    return None


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


def _tinyllama(out: Path, seed: int) -> dict:
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


def _phi2(out: Path, seed: int) -> dict:
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


def _openelm(family: str) -> Callable[[Path, int], dict]:
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


def _siglip(out: Path, seed: int) -> dict:
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


def _clip_hf(out: Path, seed: int) -> dict:
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


def _openclip(out: Path, seed: int) -> dict:
    import open_clip
    import torch
    from safetensors.torch import save_file

    f = RELEASED["openclip-vit-l-14"].config
    name = "tinyemo-tiny-ViT-L-14"
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
    (out / "open_clip_config.json").write_text(
        json.dumps(
            {
                "model_cfg": cfg,
                "preprocess_cfg": {
                    "mean": list(open_clip.OPENAI_DATASET_MEAN),
                    "std": list(open_clip.OPENAI_DATASET_STD),
                },
            },
            indent=2,
        )
    )
    return {
        "open_clip": {
            "model": name,
            "config_file": str(config_file.resolve()),
            "pretrained": str(weights.resolve()),
        },
        "scaled": "vision 1024x24 -> 32x2, text 768x12 -> 32x1, embed 768->16",
    }


def _llava(out: Path, seed: int) -> dict:
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
    ).save_pretrained(out)
    return {"scaled": "text 4096x32 -> 32x2, vision 1024x24 -> 32x3"}


def _instructblip(out: Path, seed: int) -> dict:
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


def _bunny(out: Path, seed: int) -> dict:
    from tinyemo_core.tinymodels.bunny import build_tiny_bunny

    build_tiny_bunny(out, seed=seed)
    return {"scaled": "Phi 2560x32 -> 40x2; SigLIP 1152x27 -> 24x3 (image 384, patch 14)"}


def _openclip_b32(out: Path, seed: int) -> dict:
    """Tiny open_clip ViT-B/32 (added by helper E, issue 20: CLIPScore's encoder), built like _openclip."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    f = RELEASED["openclip-vit-b-32"].config
    name = "tinyemo-tiny-ViT-B-32"
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
    return {
        "open_clip": {"model": name, "config_file": str(config_file.resolve()),
                      "pretrained": str(weights.resolve())},
        "scaled": "vision 768x12 -> 32x2, text 512x12 -> 32x1, embed 512->16",
    }


def _blip2(out: Path, seed: int) -> dict:
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


BUILDERS: dict[str, Callable[[Path, int], dict]] = {
    "tinyllama": _tinyllama,
    "phi-2": _phi2,
    "openelm-270m": _openelm("openelm-270m"),
    "openelm-450m": _openelm("openelm-450m"),
    "siglip-so400m": _siglip,
    "bunny": _bunny,
    "clip-vit-l-14": _clip_hf,
    "openclip-vit-l-14": _openclip,
    "llava-1.5": _llava,
    "instructblip-vicuna": _instructblip,
    "openclip-vit-b-32": _openclip_b32,
    "blip2-opt": _blip2,
}
FAMILIES: tuple[str, ...] = tuple(BUILDERS)


def build_tiny(family: str, out_dir: str | os.PathLike, *, seed: int = 0) -> Path:
    """Write the tiny ``family`` checkpoint to ``out_dir`` (reused when its marker matches); return the path.

    Written into a temporary sibling and renamed, so a killed build never leaves a half folder.
    """
    if family not in BUILDERS:
        raise KeyError(f"unknown tiny family {family!r}; known: {', '.join(FAMILIES)}")
    out = Path(out_dir)
    marker = {"family": family, "seed": seed, "builder_version": BUILDER_VERSION}
    if (out / MARKER).is_file():
        have = json.loads((out / MARKER).read_text())
        if {k: have.get(k) for k in marker} == marker:
            return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    extra = BUILDERS[family](tmp, seed)
    extra = json.loads(json.dumps(extra).replace(str(tmp.resolve()), str(out.resolve())))
    rel = RELEASED[family]
    (tmp / MARKER).write_text(
        json.dumps(marker | {"released": list(rel.hub_ids), "facts_source": rel.source} | extra, indent=2)
    )
    for f in tmp.glob("*.json"):  # e.g. Bunny's mm_vision_tower: absolute paths must name the final folder
        text = f.read_text()
        if str(tmp.resolve()) in text:
            f.write_text(text.replace(str(tmp.resolve()), str(out.resolve())))
    if out.exists():
        shutil.rmtree(out)
    try:
        os.replace(tmp, out)
    except OSError:  # a concurrent builder won the race; its folder is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def tiny_info(folder: str | os.PathLike) -> dict:
    """The ``tinyemo_tiny.json`` of a built folder ({} when it is not one)."""
    p = Path(folder) / MARKER
    return json.loads(p.read_text()) if p.is_file() else {}


def slug(model_ref: str) -> str:
    """A folder name for a model reference (``owner/name`` -> ``owner--name``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "--", model_ref.strip("/"))
