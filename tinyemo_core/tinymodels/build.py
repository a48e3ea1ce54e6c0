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

from . import families as F
from .facts import RELEASED

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


def _bunny(out: Path, seed: int) -> dict:
    from tinyemo_core.tinymodels.bunny import build_tiny_bunny

    build_tiny_bunny(out, seed=seed)
    return {"scaled": "Phi 2560x32 -> 40x2; SigLIP 1152x27 -> 32x3 (image 384, patch 14)"}


BUILDERS: dict[str, Callable[[Path, int], dict]] = {
    "tinyllama": F.tinyllama,
    "phi-2": F.phi2,
    "openelm-270m": F.openelm("openelm-270m"),
    "openelm-450m": F.openelm("openelm-450m"),
    "siglip-so400m": F.siglip,
    "bunny": _bunny,
    "clip-vit-l-14": F.clip_hf,
    "openclip-vit-l-14": F.openclip,
    "llava-1.5": F.llava,
    "instructblip-vicuna": F.instructblip,
    "openclip-vit-b-32": F.openclip_b32,
    "blip2-opt": F.blip2,
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
