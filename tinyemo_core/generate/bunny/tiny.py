"""A tiny random Bunny-Phi checkpoint in Bunny's own on-disk layout, built offline (tests and demos).

Layout (BAAI-DCAI/Bunny ``BunnyPhiForCausalLM``): ``model.embed_tokens``, ``model.layers.N.*``,
``model.final_layernorm``, ``lm_head`` (Phi-2, with bias); ``model.vision_tower.vision_tower.vision_model.*``
(the SigLIP tower inside Bunny's wrapper, pooling head included); ``model.mm_projector.0/2`` (``mlp2x_gelu``).
``config.json`` carries Bunny's ``mm_*`` fields and points ``mm_vision_tower`` at a tiny SigLIP folder
(config + image processor) written next to it, as the real one names ``google/siglip-so400m-patch14-384``.
The tokenizer is a byte-level BPE (GPT-2 family, like Phi-2's) trained here on a few sentences.
"""

from __future__ import annotations

import json
from pathlib import Path

from .image import BUNNY_EOS, BUNNY_SYSTEM

_CORPUS = [
    BUNNY_SYSTEM,
    "USER: Describe the image in 2-3 concise sentences. ASSISTANT: A red square on a grey background.",
    "Generate a question about the visual content of the image. What emotion does the scene evoke?",
    "Answer the previously asked question. The colours are warm and the people are smiling, so joy.",
]


def _tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[BUNNY_EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BUNNY_EOS, eos_token=BUNNY_EOS, unk_token=BUNNY_EOS
    )


def _jitter(module, seed: int, scale: float = 0.05) -> None:
    """Perturb every parameter (LayerNorms and biases included) so no tensor keeps a trivial init."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


def build_tiny_bunny(
    out_dir: str | Path,
    *,
    seed: int = 0,
    hidden: int = 32,
    layers: int = 2,
    vision_hidden: int = 24,
    vision_layers: int = 3,
    image_size: int = 28,
    patch: int = 14,
    extra_vocab_rows: int = 0,
    weights: str = "safetensors",
) -> Path:
    """Write a seeded random Bunny-Phi folder to ``out_dir`` (+ ``out_dir/siglip``); return ``out_dir``.

    ``extra_vocab_rows`` > 0 leaves spare embedding rows (Phi-2: 51,200 rows for 50,295 tokens) so the
    added ``<image>`` token fits without a resize; 0 forces the converter to grow the vocabulary.
    ``weights``: ``safetensors`` (two shards + index, as on the hub) or ``bin`` (a pickled state dict).
    """
    import torch
    from safetensors.torch import save_file
    from transformers import (
        PhiConfig,
        PhiForCausalLM,
        SiglipImageProcessor,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer(320)
    tok.save_pretrained(out)
    vocab = len(tok) + extra_vocab_rows

    vcfg = SiglipVisionConfig(
        hidden_size=vision_hidden, intermediate_size=2 * vision_hidden, num_hidden_layers=vision_layers,
        num_attention_heads=2, image_size=image_size, patch_size=patch,
    )
    tower_dir = out / "siglip"
    vcfg.save_pretrained(tower_dir)
    SiglipImageProcessor(
        size={"height": image_size, "width": image_size}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    ).save_pretrained(tower_dir)

    pcfg = PhiConfig(
        hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers, num_attention_heads=4,
        vocab_size=vocab, max_position_embeddings=256, partial_rotary_factor=0.5,
        bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    lm, tower = PhiForCausalLM(pcfg), SiglipVisionModel(vcfg)
    projector = torch.nn.Sequential(
        torch.nn.Linear(vision_hidden, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, hidden)
    )
    for i, m in enumerate((lm, tower, projector)):
        _jitter(m, seed * 10 + i)
    state = {k: v for k, v in lm.state_dict().items() if "rotary_emb" not in k}
    state |= {f"model.vision_tower.vision_tower.vision_model.{k}": v for k, v in tower.state_dict().items()}
    state |= {f"model.mm_projector.{k}": v for k, v in projector.state_dict().items()}
    state = {k: v.contiguous().clone() for k, v in state.items()}

    if weights == "bin":
        torch.save(state, out / "pytorch_model.bin")
    elif weights == "safetensors":
        keys = sorted(state)
        names = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
        shards = {names[0]: keys[::2], names[1]: keys[1::2]}
        for name, ks in shards.items():
            save_file({k: state[k] for k in ks}, out / name, metadata={"format": "pt"})
        weight_map = {k: name for name, ks in shards.items() for k in ks}
        index = {"metadata": {}, "weight_map": weight_map}
        (out / "model.safetensors.index.json").write_text(json.dumps(index))
    else:
        raise ValueError(f"weights must be 'safetensors' or 'bin', got {weights!r}")

    cfg = pcfg.to_dict()
    cfg.update(
        architectures=["BunnyPhiForCausalLM"], model_type="bunny-phi",
        mm_vision_tower=str(tower_dir.resolve()),
        mm_projector_type="mlp2x_gelu", mm_hidden_size=vision_hidden, image_aspect_ratio="pad",
        use_mm_proj=True, tokenizer_padding_side="right", tokenizer_model_max_length=256,
    )
    (out / "config.json").write_text(json.dumps(cfg, indent=2, default=str))
    return out
