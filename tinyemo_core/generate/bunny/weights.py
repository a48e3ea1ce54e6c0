"""Read checkpoints without executing code, and map Bunny-Phi tensor names onto the LLaVA layout.

On-disk names written: the llava-hf hub layout (``vision_tower.vision_model.*``,
``multi_modal_projector.linear_1/2.*``, ``language_model.model.*``, ``language_model.lm_head.*``), which
vLLM's LLaVA loader reads as is and transformers 5 maps onto ``model.vision_tower`` /
``model.multi_modal_projector`` / ``model.language_model`` / ``lm_head`` (its ``conversion_mapping``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

VISION_IN = "model.vision_tower.vision_tower.vision_model."
#: Known Bunny/SigLIP tensors that LLaVA never reads: the SigLIP pooling head (LLaVA takes hidden states),
#: rotary caches saved by old transformers versions, SigLIP's text tower when the tower comes from a full
#: SigLIP checkpoint.
DROPPED = (
    re.compile(r"^model\.vision_tower\.vision_tower\.vision_model\.head\."),
    re.compile(r"(^|\.)rotary_emb\.inv_freq$"),
)


class BunnyConversionError(ValueError):
    """The source is not a convertible Bunny-Phi checkpoint; the message names the offending key/field."""


def read_state_dict(folder: Path) -> dict:
    """All tensors of a folder: ``*.safetensors`` (via the index when present) or ``*.bin`` loaded with
    ``torch.load(weights_only=True)`` (no pickled code runs). Duplicate names across shards are an error."""
    import torch
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = sorted({folder / f for f in json.loads(index.read_text())["weight_map"].values()})
    if not files:
        files = sorted(folder.glob("*.bin"))
    if not files:
        raise BunnyConversionError(f"{folder}: no *.safetensors or *.bin weight files")
    state: dict = {}
    for f in files:
        if f.suffix == ".safetensors":
            with safe_open(f, framework="pt") as fh:
                part = {k: fh.get_tensor(k) for k in fh.keys()}
        else:
            part = torch.load(f, map_location="cpu", weights_only=True, mmap=True)
        dup = sorted(set(part) & set(state))
        if dup:
            raise BunnyConversionError(f"{f.name}: tensor {dup[0]!r} also appears in another shard")
        state.update(part)
    return state


def tower_state_from_siglip(state: dict) -> dict:
    """Vision tensors of a stand-alone SigLIP checkpoint (``vision_model.*``), renamed to Bunny's names;
    the text tower and logit scale of a full SigLIP model are ignored."""
    n = len("vision_model.")
    return {VISION_IN + k[n:]: v for k, v in state.items() if k.startswith("vision_model.")}


def rename(key: str) -> str | None:
    """Bunny-Phi name -> LLaVA on-disk name; None for a known unused tensor; raises for anything else."""
    if any(p.search(key) for p in DROPPED):
        return None
    if key.startswith(VISION_IN):
        return "vision_tower.vision_model." + key[len(VISION_IN):]
    m = re.fullmatch(r"model\.mm_projector\.([02])\.(weight|bias)", key)
    if m:
        return f"multi_modal_projector.linear_{1 if m.group(1) == '0' else 2}.{m.group(2)}"
    if re.match(r"model\.(embed_tokens|layers\.\d+|final_layernorm)\.", key):
        return "language_model." + key
    if key in ("lm_head.weight", "lm_head.bias"):
        return "language_model." + key
    raise BunnyConversionError(
        f"unexpected tensor {key!r}: not part of a Bunny-Phi checkpoint (SigLIP tower, mlp2x_gelu projector, "
        "Phi LM); remove it or convert with a matching tool"
    )


def expected_shapes(text_config, vision_config, mm_hidden: int) -> dict[str, tuple[int, ...]]:
    """Every tensor (Bunny names) the LLaVA model needs, with its shape, from meta-device instances."""
    import torch
    from transformers import PhiForCausalLM, SiglipVisionModel

    with torch.device("meta"):
        lm, tower = PhiForCausalLM(text_config), SiglipVisionModel(vision_config)
    shapes = {k: tuple(v.shape) for k, v in lm.state_dict().items() if "rotary_emb" not in k}
    shapes |= {VISION_IN + k: tuple(v.shape) for k, v in tower.state_dict().items()}
    h = text_config.hidden_size
    shapes |= {
        "model.mm_projector.0.weight": (h, mm_hidden), "model.mm_projector.0.bias": (h,),
        "model.mm_projector.2.weight": (h, h), "model.mm_projector.2.bias": (h,),
    }
    return shapes


def account(state: dict, expected: dict[str, tuple[int, ...]]) -> None:
    """Strict accounting: every expected tensor present with its shape, every present tensor known."""
    for key in state:
        if rename(key) is not None and key not in expected:
            raise BunnyConversionError(
                f"unexpected tensor {key!r}: the configs built from config.json have no such parameter "
                "(more layers than num_hidden_layers?)"
            )
    missing = sorted(set(expected) - set(state))
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise BunnyConversionError(f"missing tensor {missing[0]!r}{more}: the checkpoint is incomplete")
    for key, shape in expected.items():
        got = tuple(state[key].shape)
        if got != shape:
            raise BunnyConversionError(f"tensor {key!r} has shape {got}, the config implies {shape}")
