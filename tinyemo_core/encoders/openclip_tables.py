"""open_clip's model-config and pretrained-weight tables, read WITHOUT importing open_clip (or torch).

``import open_clip`` imports torch and torchvision (seconds); a fingerprint only needs two data tables that
open_clip ships as plain files: ``model_configs/<name>.json`` and the ``_PRETRAINED`` dict in
``pretrained.py``. That module's own imports are light (tqdm, huggingface_hub, ``.constants``, ``.version``;
its ``safetensors.torch`` import is optional and is blocked here), so it is loaded on its own under a private
package name whose ``__path__`` is open_clip's folder - open_clip's ``__init__`` never runs. When open_clip is
already imported, or the tables cannot be read this way (a future layout), the real functions are used, so
the values are always open_clip's own.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import sys
import types
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

_ALIAS = "_tinyemo_open_clip_tables"


def _open_clip_dir() -> Path:
    spec = importlib.util.find_spec("open_clip")  # locates the package; does not execute it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("open_clip is not installed: `pip install open_clip_torch`")
    return Path(next(iter(spec.submodule_search_locations)))


@lru_cache(maxsize=1)
def _pretrained_module() -> ModuleType | None:
    """open_clip/pretrained.py loaded standalone, or None when that is not possible."""
    try:
        root = _open_clip_dir()
        pkg = types.ModuleType(_ALIAS)
        pkg.__path__ = [str(root)]
        sys.modules[_ALIAS] = pkg
        blocked = "safetensors.torch" not in sys.modules
        if blocked:  # optional in pretrained.py (try/except ImportError); it would import torch
            sys.modules["safetensors.torch"] = None  # type: ignore[assignment]
        try:
            mod = importlib.import_module(f"{_ALIAS}.pretrained")
        finally:
            if blocked:
                del sys.modules["safetensors.torch"]
        return mod if callable(getattr(mod, "get_pretrained_cfg", None)) else None
    except Exception:  # noqa: BLE001 - any layout change: fall back to the real package
        return None


def get_pretrained_cfg(model: str, tag: str) -> dict[str, Any]:
    """``open_clip.get_pretrained_cfg(model, tag)`` ({} when unknown)."""
    mod = sys.modules.get("open_clip") or _pretrained_module()
    if mod is None:
        import open_clip as mod
    return mod.get_pretrained_cfg(model, tag)


def get_model_config(model: str) -> dict[str, Any] | None:
    """``open_clip.get_model_config(model)`` for open_clip's built-in architectures (None when unknown).

    Names open_clip resolves elsewhere (``hf-hub:``/``local-dir:`` schemas, configs registered at run time)
    go through open_clip itself.
    """
    if "open_clip" in sys.modules or ":" in model:
        import open_clip

        return open_clip.get_model_config(model)
    return builtin_model_config(model)


def builtin_model_config(model: str) -> dict[str, Any] | None:
    """The architecture config open_clip ships as ``model_configs/<model>.json`` (None when absent)."""
    path = _open_clip_dir() / "model_configs" / f"{model}.json"
    if not path.is_file():
        return None
    cfg = json.loads(path.read_text())
    # open_clip registers only files with these keys (factory._rescan_model_configs)
    return copy.deepcopy(cfg) if all(k in cfg for k in ("embed_dim", "vision_cfg", "text_cfg")) else None
