"""A tiny random Bunny-Phi checkpoint saved the way Bunny's training code saves one (tests and demos).

What BAAI-DCAI/Bunny writes (``bunny/model/language_model/bunny_phi.py``, ``bunny_arch.py``,
``multimodal_encoder/siglip/siglip_encoder.py``) and this keeps, width and depth aside
(:data:`tinyemo_core.tinymodels.facts.BUNNY`): ``model.embed_tokens``, ``model.layers.N.*``,
``model.final_layernorm``, and a bias-free ``lm_head`` (``BunnyPhiForCausalLM`` replaces Phi's head with
``nn.Linear(hidden, vocab, bias=False)``); the frozen SigLIP tower under
``model.vision_tower.vision_tower.vision_model.*`` (its pooling head included, a copy of the SigLIP
checkpoint's vision weights); ``model.mm_projector.0/2`` (``mlp2x_gelu``). ``config.json`` is the released
one (``partial_rotary_factor`` 0.4, ``rope_theta``, ``pad_token_id`` 50256, ``tokenizer_model_max_length``,
the training flags) with ``mm_vision_tower`` pointing at a tiny SigLIP folder (384 px, patch 14) next to
it. The tokenizer keeps Phi-2's ids (50,295 tokens, ``<|endoftext|>`` = 50256).
"""

from __future__ import annotations

import json
from pathlib import Path

from tinyemo_core.generate.bunny.convert import text_fields
from tinyemo_core.generate.bunny.image import BUNNY_EOS
from tinyemo_core.tinymodels.build import build_tiny
from tinyemo_core.tinymodels.facts import BUNNY, PHI2
from tinyemo_core.tinymodels.tokenizer import synthetic_tokenizer

HIDDEN, LAYERS, HEADS = 40, 2, 4  # head dim 10: partial_rotary_factor 0.4 rotates 4 dims (0.5 would rotate 5)


def _jitter(module, seed: int, scale: float = 0.05) -> None:
    """Perturb every parameter (LayerNorms and biases included) so no tensor keeps a trivial init."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


def bunny_tokenizer():
    """Phi-2's tokenizer ids (length 50,295; ``<|endoftext|>`` at 50256 is bos/eos/unk/pad)."""
    eot = BUNNY_EOS
    return synthetic_tokenizer(PHI2.tokenizer["length"], {PHI2.tokenizer["eos"][1]: eot},
                               {"bos": eot, "eos": eot, "unk": eot, "pad": eot})


def build_tiny_bunny(
    out_dir: str | Path,
    *,
    seed: int = 0,
    extra_vocab_rows: int = 0,
    weights: str = "safetensors",
) -> Path:
    """Write a seeded random Bunny-Phi folder to ``out_dir`` (+ ``out_dir/siglip``); return ``out_dir``.

    ``extra_vocab_rows`` > 0 saves more embedding rows than tokens (Phi-2's own 51,200 rows for 50,295
    tokens, a checkpoint saved without Bunny's resize); 0 is the release (``vocab_size`` 50,295).
    ``weights``: ``safetensors`` (two shards + index, as on the hub) or ``bin`` (a pickled state dict).
    """
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import PhiConfig, PhiForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = bunny_tokenizer()
    tok.save_pretrained(out)
    tower_dir = build_tiny("siglip-so400m", out / "siglip", seed=seed)
    tower_cfg = json.loads((tower_dir / "config.json").read_text())["vision_config"]
    tower = {k[len("vision_model."):]: v for k, v in load_file(tower_dir / "model.safetensors").items()
             if k.startswith("vision_model.")}

    cfg = dict(BUNNY.config) | {
        "hidden_size": HIDDEN, "intermediate_size": 4 * HIDDEN, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "num_key_value_heads": HEADS, "vocab_size": len(tok) + extra_vocab_rows,
        "mm_hidden_size": tower_cfg["hidden_size"], "mm_vision_tower": str(tower_dir.resolve()),
        "torch_dtype": "float32",
    }
    torch.manual_seed(seed)
    lm = PhiForCausalLM(PhiConfig(**text_fields(cfg)))
    projector = torch.nn.Sequential(
        torch.nn.Linear(tower_cfg["hidden_size"], HIDDEN), torch.nn.GELU(), torch.nn.Linear(HIDDEN, HIDDEN)
    )
    for i, m in enumerate((lm, projector)):
        _jitter(m, seed * 10 + i)
    state = {k: v for k, v in lm.state_dict().items() if "rotary_emb" not in k and k != "lm_head.bias"}
    state |= {f"model.vision_tower.vision_tower.vision_model.{k}": v for k, v in tower.items()}
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
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    return out
