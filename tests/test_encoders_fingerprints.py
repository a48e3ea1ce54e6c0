"""Fingerprints (and paper-mode label embedding) run without torch/open_clip/transformers, same values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from registry_entries import backbone_entry, vision_entry

from tinyemo_core.encoders import openclip_tables

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys
import tinyemo_core.encoders.fingerprints as f
from tinyemo_core.config import load_flows
from tinyemo_core.registry import backbone_spec, encoder_spec
_F = load_flows(sys.argv[1])
vision_entry = lambda n: encoder_spec(_F, n)
backbone_entry = lambda n: backbone_spec(_F, n)
out = {"demo": f.vision_fingerprint(vision_entry("demo-tiny-clip")),
       "clip": f.vision_fingerprint(vision_entry("clip-vit-l-14")),
       "siglip": f.vision_fingerprint(vision_entry("siglip-so400m"))}
minilm = backbone_entry("minilm")
out["minilm"] = f.backbone_fingerprint(minilm)
out["minilm_hidden"] = f.backbone_fingerprint(minilm.model_copy(update={"mode": "hidden_mean"}))
out["random"] = f.backbone_fingerprint(backbone_entry("tiny-random-llama"))
from tinyemo_core.encoders.labels import load_label_embedder  # paper mode: tokenizers + numpy only
out["joy"] = load_label_embedder(minilm, cache_dir=".").embed(["joy"])[0, :4].tolist()
heavy = [m for m in ("torch", "torchvision", "open_clip", "transformers") if m in sys.modules]
assert not heavy, heavy
print(json.dumps(out))
"""


def _child_fingerprints() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-c", CHILD, str(ROOT / "flows.yaml")], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_fingerprints_import_no_torch_and_match_the_loaders(tmp_path: Path) -> None:
    fps = _child_fingerprints()
    joy = fps.pop("joy")
    assert len(set(fps.values())) == len(fps)
    # the same values through the heavy modules (compatibility re-exports) and the loaded objects
    from tinyemo_core.encoders.fingerprints import vision_fingerprint
    from tinyemo_core.encoders.labels import backbone_fingerprint, load_label_embedder
    from tinyemo_core.encoders.vision import load_vision_encoder

    assert vision_fingerprint(vision_entry("clip-vit-l-14")) == fps["clip"]
    assert load_vision_encoder(vision_entry("demo-tiny-clip")).fingerprint == fps["demo"]
    assert backbone_fingerprint(backbone_entry("minilm")) == fps["minilm"]
    minilm = load_label_embedder(backbone_entry("minilm"), tmp_path)
    assert minilm.embed(["joy"])[0, :4].tolist() == pytest.approx(joy, abs=1e-6)
    # random: the fingerprint is the seeded build config's, so it is the same before and after the build
    built = load_label_embedder(backbone_entry("tiny-random-llama"), tmp_path)
    assert built.fingerprint == fps["random"]


@pytest.mark.parametrize(("model", "tag"), [("ViT-L-14", "openai"), ("ViT-B-16", "laion2b_s34b_b88k"),
                                            ("ViT-SO400M-14-SigLIP-384", "webli"), ("ViT-B-16", "nope")])
def test_openclip_tables_equal_open_clip(model: str, tag: str) -> None:
    import open_clip

    standalone = openclip_tables._pretrained_module()  # the read that runs when open_clip is not imported
    assert standalone is not None and standalone.__name__ != "open_clip.pretrained"
    assert standalone.get_pretrained_cfg(model, tag) == open_clip.get_pretrained_cfg(model, tag)
    assert openclip_tables.builtin_model_config(model) == open_clip.get_model_config(model)
    assert openclip_tables.builtin_model_config("NoSuchNet") is None
