"""Synthetic instruction data (TinyEmo §III-A, App. A; EmoVIT §3.2): prompts, generators, cache, exports."""

from .spec import GenerationSpec, ValidationSpec

__all__ = ["GenerationSpec", "ValidationSpec"]
