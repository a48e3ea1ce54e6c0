"""Fingerprints of the frozen models: what names a cached feature / label store. Never loads a model.

Importing this module (and calling its functions) does not import torch, torchvision, open_clip or
transformers, so a warm run whose stores are complete decides "nothing to do" in milliseconds. Files are
identified by header or content hashes (:mod:`tinyemo_core.identity`), open_clip's tables are read from
its package files (``openclip_tables``), package versions come from ``importlib.metadata``. The one
exception: a backbone given as un-indexed ``pytorch_model*.bin`` files needs torch to list the tensor names.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
from pathlib import Path

from tinyemo_core.encoders import openclip_tables
from tinyemo_core.encoders.backbones import TOKENIZER_FILES, package_model_dir, random_spec_config
from tinyemo_core.encoders.embedding_table import embedding_identity
from tinyemo_core.encoders.specs import BackboneSpec, VisionEncoderSpec
from tinyemo_core.identity import file_sha256, files_identity, hash_json

# Bump when the code that turns (spec, image) into a vector changes in a way that changes the vector.
VISION_CODE_VERSION = "vision-1"
# Bump when the (spec, text) -> vector computation changes.
LABELS_CODE_VERSION = "labels-1"


def resolve_config_file(config_file: str) -> Path:
    """``builtin:<name>.json`` -> a file shipped in tinyemo_core/encoders/configs; else a filesystem path."""
    if config_file.startswith("builtin:"):
        ref = importlib.resources.files("tinyemo_core.encoders") / "configs" / config_file[len("builtin:"):]
        path = Path(str(ref))
    else:
        path = Path(config_file).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"open_clip config_file {config_file!r} not found (looked at {path})")
    return path


def _is_local(ref: str) -> bool:
    return Path(ref).expanduser().exists()


def _open_clip_identity(spec: VisionEncoderSpec) -> dict:
    """Everything open_clip-specific that fixes the output, read from config tables (no model built)."""
    ident: dict = {"model": spec.model}
    if spec.config_file:
        ident["config_file"] = file_sha256(resolve_config_file(spec.config_file))
    else:
        ident["model_cfg"] = openclip_tables.get_model_config(spec.model)  # image size, widths, pooling...
    if spec.pretrained is None:
        ident["weights"] = f"random-init:seed={spec.seed}"
    elif _is_local(spec.pretrained):
        ident["weights"] = file_sha256(Path(spec.pretrained).expanduser())
    else:
        cfg = openclip_tables.get_pretrained_cfg(spec.model, spec.pretrained)
        if not cfg:
            raise ValueError(
                f"open_clip has no pretrained tag {spec.pretrained!r} for {spec.model!r}; see "
                f"open_clip.list_pretrained_tags_by_model({spec.model!r}) or give a local weights file"
            )
        ident["weights"] = {"tag": spec.pretrained, "source": {k: cfg.get(k) for k in ("url", "hf_hub")}}
        # preprocessing overrides carried by the pretrained config (mean/std/interpolation/resize mode)
        ident["preprocess"] = {k: cfg.get(k) for k in ("mean", "std", "interpolation", "resize_mode")}
    return ident


def _hf_identity(spec: VisionEncoderSpec) -> dict:
    ident: dict = {"model": spec.model, "revision": spec.revision}
    if _is_local(spec.model):
        root = Path(spec.model).expanduser()
        # weights + config + preprocessor config: the full content hash (cached in-process).
        ident["files"] = files_identity(
            [*root.glob("*.safetensors"), *root.glob("*.bin"), root / "config.json",
             root / "preprocessor_config.json"], full=True)
    return ident


def vision_fingerprint(spec: VisionEncoderSpec) -> str:
    """Hash of everything that determines the encoder's output; never loads the model.

    It names a stored feature set, so ``store_dtype`` is in; batch_size, num_workers and device are out
    (device only changes floating-point rounding), and so is ``patch_tokens`` (patches go to their own store,
    the pooled vectors do not depend on it).
    """
    ident = _open_clip_identity(spec) if spec.kind == "open_clip" else _hf_identity(spec)
    payload = {"kind": spec.kind, "ident": ident, "dtype": spec.dtype, "store_dtype": spec.store_dtype,
               "code": VISION_CODE_VERSION}
    if spec.decode != "pil":  # other pixels (within docs/encoders.md's tolerance): its own store
        payload["decode"] = spec.decode
    return hash_json(payload)[:16]


def _minor_version(package: str) -> str:
    return ".".join(importlib.metadata.version(package).split(".")[:2])


def backbone_fingerprint(spec: BackboneSpec, model_dir: Path | None = None) -> str:
    """Hash of everything that fixes the label vectors, without loading any weights.

    Hub ids: id + revision (pin a commit for reproducibility; "main" moves). Local dirs and the MiniLM
    package: tokenizer/config file hashes plus, in paper mode, the hash of the embedding tensor's bytes only
    (the rest of the checkpoint cannot change the output), and in hidden modes the full weight files.
    ``random:``: its build config, seed and the transformers version that initialises it - not the built
    files, so the fingerprint is known before (and without) building the seeded, deterministic checkpoint.
    """
    src = spec.source
    ident: dict = {"source": src, "revision": spec.revision, "tokenizer": spec.tokenizer}
    if src.startswith("random:"):
        ident["random"] = {"config": random_spec_config(spec), "seed": 0,
                           "transformers": _minor_version("transformers")}
    else:
        root = model_dir
        if root is None and src.startswith("package:"):
            root = package_model_dir(src.split(":", 1)[1])
        elif root is None and Path(src).expanduser().is_dir():
            root = Path(src).expanduser()
        if root is not None:
            ident["files"] = files_identity([root / n for n in (*TOKENIZER_FILES, "config.json")], full=True)
            if spec.mode == "static_mean":
                ident["embedding"] = embedding_identity(root)
            else:
                weights = [*root.glob("*.safetensors"), *root.glob("*.bin")]
                ident["weights"] = files_identity(weights, full=True)
    payload = {"ident": ident, "mode": spec.mode, "layer": spec.layer if spec.mode != "static_mean" else None,
               "special": spec.add_special_tokens, "code": LABELS_CODE_VERSION}
    return hash_json(payload)[:16]


__all__ = ["LABELS_CODE_VERSION", "VISION_CODE_VERSION", "backbone_fingerprint", "resolve_config_file",
           "vision_fingerprint"]
