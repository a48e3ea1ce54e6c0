"""The one factory of same-family tiny checkpoints (docs/checkpoints.md).

``build_tiny(family, out_dir)`` writes a seeded random checkpoint in the released format that keeps every
released fact (rotary factors, tied/untied heads, special-token ids, image and patch sizes, projector type)
and scales only width and depth; ``family_for(model_ref)`` maps a hub id or a flows.yaml/open_clip name onto
a family; ``FAMILIES`` lists them; ``RELEASED`` holds the facts with their sources.
"""

from .build import FAMILIES, build_tiny, family_for, slug, tiny_info
from .facts import RELEASED, ReleasedCheckpoint, kept_facts

__all__ = [
    "FAMILIES",
    "RELEASED",
    "ReleasedCheckpoint",
    "build_tiny",
    "family_for",
    "kept_facts",
    "slug",
    "tiny_info",
]
