"""Facts about the released checkpoints the profiles name: each ``config.json``'s non-default fields, as data,
with where they come from (docs/checkpoints.md lists them for people).

These are read from the published files (the hub repositories' ``config.json`` / ``tokenizer_config.json``
and, for Bunny, the authors' training code); nothing is downloaded at run time. ``WIDTH_DEPTH`` names the
fields a tiny same-family checkpoint may scale down; every other fact is kept as released
(:mod:`tinyemo_core.tinymodels.build`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HF = "https://huggingface.co"


@dataclass(frozen=True)
class ReleasedCheckpoint:
    """One released checkpoint: its id, the file the facts come from, and the facts themselves.

    ``config``: the released ``config.json`` fields that shape the network or its I/O (nested dicts for
    composite configs). ``tokenizer``: vocabulary length and special tokens with their ids. ``notes``: what a
    reader must know that is not a config field.
    """

    family: str
    hub_ids: tuple[str, ...]
    source: str
    config: dict[str, Any]
    tokenizer: dict[str, Any] = field(default_factory=dict)
    notes: str = ""


#: Fields a tiny checkpoint scales down (width and depth); everything else in ``config`` is kept.
WIDTH_DEPTH = frozenset(
    {
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "projection_dim",
        "mm_hidden_size",
        "encoder_hidden_size",
        "model_dim",
        "num_transformer_layers",
        "num_query_heads",
        "num_kv_heads",
        "ffn_multipliers",
        "embed_dim",
        "width",
        "layers",
        "heads",
        "mlp_ratio",
        "num_gqa_groups",
        "ffn_dim",
        "word_embed_proj_dim",
    }
)

TINYLLAMA = ReleasedCheckpoint(
    family="tinyllama",
    hub_ids=("TinyLlama/TinyLlama-1.1B-Chat-v1.0",),
    source=f"{HF}/TinyLlama/TinyLlama-1.1B-Chat-v1.0/blob/main/config.json",
    config={
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 2048,
        "intermediate_size": 5632,
        "num_hidden_layers": 22,
        "num_attention_heads": 32,
        "num_key_value_heads": 4,
        "hidden_act": "silu",
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "vocab_size": 32000,
        "bos_token_id": 1,
        "eos_token_id": 2,
    },
    tokenizer={
        "length": 32000,
        "unk": ("<unk>", 0),
        "bos": ("<s>", 1),
        "eos": ("</s>", 2),
        "kind": "Llama SentencePiece (byte fallback)",
        "chat": "Zephyr: <|user|>\\n...</s>\\n<|assistant|>",
    },
    notes="Grouped-query attention, 8 query heads per key/value head; untied output head.",
)

PHI2 = ReleasedCheckpoint(
    family="phi-2",
    hub_ids=("microsoft/phi-2",),
    source=f"{HF}/microsoft/phi-2/blob/main/config.json",
    config={
        "architectures": ["PhiForCausalLM"],
        "model_type": "phi",
        "hidden_size": 2560,
        "intermediate_size": 10240,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "hidden_act": "gelu_new",
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": 2048,
        "partial_rotary_factor": 0.4,
        "rope_theta": 10000.0,
        "qk_layernorm": False,
        "resid_pdrop": 0.1,
        "tie_word_embeddings": False,
        "vocab_size": 51200,
        "bos_token_id": 50256,
        "eos_token_id": 50256,
    },
    tokenizer={
        "length": 50295,
        "bos": ("<|endoftext|>", 50256),
        "eos": ("<|endoftext|>", 50256),
        "unk": ("<|endoftext|>", 50256),
        "kind": "GPT-2 byte-level BPE (50,257) + 38 added tokens",
    },
    notes=(
        "partial_rotary_factor 0.4: 32 of each head's 80 dimensions rotate. The output head has a bias. "
        "51,200 embedding rows for a 50,295-token tokenizer (rows padded to a multiple of 64)."
    ),
)

_OPENELM_COMMON = {
    "model_type": "openelm",
    "architectures": ["OpenELMForCausalLM"],
    "head_dim": 64,
    "vocab_size": 32000,
    "max_context_length": 2048,
    "rope_freq_constant": 10000,
    "rope_max_length": 4096,
    "share_input_output_layers": True,
    "normalize_qk_projections": True,
    "ffn_with_glu": True,
    "ffn_dim_divisor": 256,
    "activation_fn_name": "swish",
    "normalization_layer_name": "rms_norm",
    "qkv_multipliers": [0.5, 1.0],
    "num_gqa_groups": 4,
    "bos_token_id": 1,
    "eos_token_id": 2,
}

OPENELM_270M = ReleasedCheckpoint(
    family="openelm-270m",
    hub_ids=("apple/OpenELM-270M", "apple/OpenELM-270M-Instruct"),
    source=f"{HF}/apple/OpenELM-270M-Instruct/blob/main/config.json",
    config={
        **_OPENELM_COMMON,
        "model_dim": 1280,
        "num_transformer_layers": 16,
        "num_query_heads": [12, 12, 12, 12, 12, 16, 16, 16, 16, 16, 16, 16, 20, 20, 20, 20],
        "num_kv_heads": [3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5],
        "ffn_multipliers": [
            0.5,
            0.73,
            0.97,
            1.2,
            1.43,
            1.67,
            1.9,
            2.13,
            2.37,
            2.6,
            2.83,
            3.07,
            3.3,
            3.53,
            3.77,
            4.0,
        ],
    },
    tokenizer={
        "length": 32000,
        "unk": ("<unk>", 0),
        "bos": ("<s>", 1),
        "eos": ("</s>", 2),
        "kind": "none shipped: the model card loads meta-llama/Llama-2-7b-hf's (a gated repo)",
    },
    notes=(
        "Layer-wise scaling: query/kv heads and FFN width grow with depth; q/k RMS-normalised; input and "
        "output embeddings shared. The modelling code is on the hub (trust_remote_code); no transformers "
        "class exists, so the tiny stand-in is Llama-shaped (docs/checkpoints.md)."
    ),
)

OPENELM_450M = ReleasedCheckpoint(
    family="openelm-450m",
    hub_ids=("apple/OpenELM-450M", "apple/OpenELM-450M-Instruct"),
    source=f"{HF}/apple/OpenELM-450M-Instruct/blob/main/config.json",
    config={
        **_OPENELM_COMMON,
        "model_dim": 1536,
        "num_transformer_layers": 20,
        "num_query_heads": [12, 12, 12, 16, 16, 16, 16, 16, 16, 16, 20, 20, 20, 20, 20, 20, 24, 24, 24, 24],
        "num_kv_heads": [3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6],
        "ffn_multipliers": [round(0.5 + 3.5 * i / 19, 2) for i in range(20)],
    },
    tokenizer=OPENELM_270M.tokenizer,
    notes=OPENELM_270M.notes,
)

SIGLIP_SO400M = ReleasedCheckpoint(
    family="siglip-so400m",
    hub_ids=("google/siglip-so400m-patch14-384",),
    source=f"{HF}/google/siglip-so400m-patch14-384/blob/main/config.json",
    config={
        "model_type": "siglip",
        "vision_config": {
            "hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27,
            "num_attention_heads": 16, "image_size": 384, "patch_size": 14, "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-06,
        },
    },
    tokenizer={"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": "bicubic"},
    notes="No CLS token: 27 x 27 = 729 patch tokens; a pooling head (unused by Bunny/LLaVA).",
)

BUNNY = ReleasedCheckpoint(
    family="bunny",
    hub_ids=("BAAI/Bunny-v1_0-3B",),
    source=(
        f"{HF}/BAAI/Bunny-v1_0-3B/blob/main/config.json; BAAI-DCAI/Bunny "
        "bunny/model/language_model/bunny_phi.py, bunny/model/bunny_arch.py, "
        "bunny/model/multimodal_encoder/siglip/siglip_encoder.py"
    ),
    config={
        **{k: v for k, v in PHI2.config.items() if k not in ("architectures", "model_type", "vocab_size")},
        "architectures": ["BunnyPhiForCausalLM"], "model_type": "bunny-phi", "vocab_size": 50295,
        "pad_token_id": 50256, "attention_dropout": 0.0, "embd_pdrop": 0.0, "rope_scaling": None,
        "initializer_range": 0.02, "use_cache": True,
        "mm_vision_tower": "google/siglip-so400m-patch14-384", "mm_hidden_size": 1152,
        "mm_projector_type": "mlp2x_gelu", "image_aspect_ratio": "pad", "use_mm_proj": True,
        "tokenizer_model_max_length": 2048, "tokenizer_padding_side": "right",
        # training flags saved with the model (no effect on the forward pass)
        "mm_projector_lr": 2e-05, "freeze_mm_mlp_adapter": False, "tune_mm_mlp_adapter": False,
    },
    tokenizer=PHI2.tokenizer,
    notes=(
        "BunnyPhiForCausalLM replaces Phi's head with nn.Linear(hidden, vocab, bias=False): the release has "
        "no lm_head.bias. The SigLIP tower is saved under model.vision_tower.vision_tower.vision_model.* "
        "with its pooling head; Bunny reads hidden_states[-2] of it (all 729 patch tokens). Bunny's loader "
        "resizes the embeddings to len(tokenizer): the release has 50,295 rows (Phi-2 has 51,200)."
    ),
)

CLIP_VIT_L_14 = ReleasedCheckpoint(
    family="clip-vit-l-14",
    hub_ids=("openai/clip-vit-large-patch14",),
    source=f"{HF}/openai/clip-vit-large-patch14/blob/main/config.json",
    config={
        "model_type": "clip",
        "projection_dim": 768,
        "vision_config": {
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "image_size": 224,
            "patch_size": 14,
            "projection_dim": 768,
            "hidden_act": "quick_gelu",
        },
        "text_config": {
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "max_position_embeddings": 77,
            "vocab_size": 49408,
            "projection_dim": 768,
            "hidden_act": "quick_gelu",
            "bos_token_id": 49406,
            "eos_token_id": 49407,
        },
    },
    tokenizer={"length": 49408, "bos": ("<|startoftext|>", 49406), "eos": ("<|endoftext|>", 49407)},
    notes="16 x 16 = 256 patch tokens + CLS; LLaVA-style readers take hidden_states[-2] without CLS.",
)

OPENCLIP_VIT_L_14 = ReleasedCheckpoint(
    family="openclip-vit-l-14",
    hub_ids=("ViT-L-14", "ViT-L-14/openai", "timm/vit_large_patch14_clip_224.openai"),
    source="open_clip src/open_clip/model_configs/ViT-L-14.json (pretrained tag 'openai')",
    config={
        "embed_dim": 768,
        "vision_cfg": {"image_size": 224, "layers": 24, "width": 1024, "patch_size": 14},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 768, "heads": 12, "layers": 12},
        "quick_gelu": True,
    },
    tokenizer={"length": 49408, "kind": "CLIP BPE (bundled with open_clip)"},
    notes="The OpenAI weights were trained with QuickGELU (open_clip names the model ViT-L-14-quickgelu).",
)

LLAVA_15 = ReleasedCheckpoint(
    family="llava-1.5",
    hub_ids=("llava-hf/llava-1.5-7b-hf",),
    source=f"{HF}/llava-hf/llava-1.5-7b-hf/blob/main/config.json",
    config={
        "architectures": ["LlavaForConditionalGeneration"],
        "model_type": "llava",
        "image_token_index": 32000,
        "pad_token_id": 32001,
        "projector_hidden_act": "gelu",
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "tie_word_embeddings": False,
        "text_config": {
            "model_type": "llama",
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-05,
            "vocab_size": 32064,
        },
        "vision_config": {
            "model_type": "clip_vision_model",
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "image_size": 336,
            "patch_size": 14,
            "projection_dim": 768,
        },
    },
    tokenizer={
        "length": 32002,
        "unk": ("<unk>", 0),
        "bos": ("<s>", 1),
        "eos": ("</s>", 2),
        "image": ("<image>", 32000),
        "pad": ("<pad>", 32001),
    },
    notes="24 x 24 = 576 image tokens; 32,064 embedding rows for a 32,002-token tokenizer.",
)

INSTRUCTBLIP_VICUNA = ReleasedCheckpoint(
    family="instructblip-vicuna",
    hub_ids=("Salesforce/instructblip-vicuna-7b",),
    source=f"{HF}/Salesforce/instructblip-vicuna-7b/blob/main/config.json",
    config={
        "architectures": ["InstructBlipForConditionalGeneration"],
        "model_type": "instructblip",
        "num_query_tokens": 32,
        "use_decoder_only_language_model": True,
        "vision_config": {
            "hidden_size": 1408,
            "intermediate_size": 6144,
            "num_hidden_layers": 39,
            "num_attention_heads": 16,
            "image_size": 224,
            "patch_size": 14,
        },
        "qformer_config": {
            "hidden_size": 768,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
            "cross_attention_frequency": 2,
            "encoder_hidden_size": 1408,
            "vocab_size": 30523,
        },
        "text_config": {
            "model_type": "llama",
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "vocab_size": 32001,
            "tie_word_embeddings": False,
        },
    },
    tokenizer={
        "unk": ("<unk>", 0),
        "bos": ("<s>", 1),
        "eos": ("</s>", 2),
        "length": 32001,
        "qformer": "bert-base-uncased WordPiece + [DEC] (30,523)",
    },
    notes="EVA ViT-g/14 at 224 px: 16 x 16 patches + CLS; 32 learned queries of 768 dims.",
)

OPENCLIP_VIT_B_32 = ReleasedCheckpoint(  # added by helper E (issue 20): CLIPScore's model in Hessel et al.
    family="openclip-vit-b-32",
    hub_ids=("ViT-B-32", "ViT-B-32/openai", "timm/vit_base_patch32_clip_224.openai"),
    source="open_clip src/open_clip/model_configs/ViT-B-32.json (pretrained tag 'openai')",
    config={
        "embed_dim": 512,
        "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12},
        "quick_gelu": True,
    },
    tokenizer={"length": 49408, "kind": "CLIP BPE (bundled with open_clip)"},
    notes="The OpenAI weights were trained with QuickGELU; 7 x 7 patches of 32 px + CLS.",
)

BLIP2_OPT = ReleasedCheckpoint(  # added by helper E (issue 20): EmoVIT's captioner (LAVIS blip2_opt)
    family="blip2-opt",
    hub_ids=("Salesforce/blip2-opt-2.7b",),
    source=f"{HF}/Salesforce/blip2-opt-2.7b/blob/main/config.json",
    config={
        "architectures": ["Blip2ForConditionalGeneration"],
        "model_type": "blip-2",
        "num_query_tokens": 32,
        "image_token_index": 50265,
        "vision_config": {
            "hidden_size": 1408,
            "intermediate_size": 6144,
            "num_hidden_layers": 39,
            "num_attention_heads": 16,
            "image_size": 224,
            "patch_size": 14,
        },
        "qformer_config": {
            "hidden_size": 768,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
            "cross_attention_frequency": 2,
            "encoder_hidden_size": 1408,
        },
        "text_config": {
            "model_type": "opt",
            "hidden_size": 2560,
            "ffn_dim": 10240,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "word_embed_proj_dim": 2560,
            "vocab_size": 50272,
            "eos_token_id": 50118,
        },
    },
    tokenizer={"bos": ("</s>", 2), "pad": ("<pad>", 1), "unk": ("<unk>", 3), "image": ("<image>", 50265),
               "length": 50266},
    notes="EVA ViT-g/14 at 224 px, 32 queries; OPT-2.7B whose generation stops at '\\n' (eos 50118).",
)

RELEASED: dict[str, ReleasedCheckpoint] = {
    c.family: c
    for c in (
        TINYLLAMA,
        PHI2,
        OPENELM_270M,
        OPENELM_450M,
        SIGLIP_SO400M,
        BUNNY,
        CLIP_VIT_L_14,
        OPENCLIP_VIT_L_14,
        LLAVA_15,
        INSTRUCTBLIP_VICUNA,
        OPENCLIP_VIT_B_32,
        BLIP2_OPT,
    )
}


def kept_facts(family: str) -> dict[str, Any]:
    """The released config fields a tiny checkpoint of ``family`` keeps as they are (flattened with dots)."""

    def flat(d: dict, prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out |= flat(v, f"{prefix}{k}.")
            elif k not in WIDTH_DEPTH:
                out[f"{prefix}{k}"] = v
        return out

    return flat(RELEASED[family].config)
