"""Generator backends behind one interface; :func:`make_generator` picks one from a GenerationSpec."""

from __future__ import annotations

from tinyemo_core.generate.backends.demo_grounded import DemoGroundedGenerator
from tinyemo_core.generate.backends.transformers_local import TransformersGenerator

from ..spec import GenerationSpec
from .base import Answer, ChatRequest, Generator, GeneratorUnavailable, RequestFailed, Sampling, Turn


def make_generator(spec: GenerationSpec) -> Generator:
    """Build the backend named by ``spec.backend`` (the HTTP client does no I/O until :meth:`health`)."""
    if spec.backend == "demo":
        return DemoGroundedGenerator()
    if spec.backend == "openai":
        from .openai_http import OpenAIHTTPGenerator

        return OpenAIHTTPGenerator.from_spec(spec)

    return TransformersGenerator.from_spec(spec)


__all__ = [
    "Answer",
    "ChatRequest",
    "Generator",
    "GeneratorUnavailable",
    "RequestFailed",
    "Sampling",
    "Turn",
    "make_generator",
]
