"""What names a reasoning model's starting weights in a fine-tune fingerprint (no torch, no model loaded).

The ``reasoning.model`` settings, plus every part given as a local folder or file named by its CONTENT
(:func:`tinyemo_core.identity.model_ref_identity`): an LLM folder retrained in place changes the fingerprint
of every stage that starts from it. Hub ids are named by id + revision (in the settings); ``tiny`` models by
their build settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyemo_core.finetune.spec import ModelSpec
from tinyemo_core.identity import model_ref_identity

LOCAL_PARTS = ("vision", "llm", "source")


def model_identity(spec: ModelSpec) -> dict[str, Any]:
    """The settings and the content identity of each local part (vision tower, LLM, complete checkpoint);
    a local part's path is not in it (the same weights copied elsewhere are the same starting point)."""
    local = [k for k in LOCAL_PARTS if (v := getattr(spec, k)) and Path(v).expanduser().exists()]
    return {
        "spec": spec.model_dump(mode="json", exclude=set(local)),
        "local": {k: model_ref_identity(getattr(spec, k), spec.revision) for k in local},
    }
