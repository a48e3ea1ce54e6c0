"""Two generators behind one: a vision model that captions, a text model that writes (EmoVIT §3.2, §4.1).

EmoVIT captions each image with BLIP-2 and asks GPT-4, which sees no image, for the Conversation and
Reasoning data from the caption + attributes. :class:`RoleSplitGenerator` implements the generator interface
and routes by the request itself: a request with an image goes to the captioner (with the captioner's own
sampling), a text-only request to the text model. The text model can never be sent an image.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path

from tinyemo_core.generate.tiny_model import resolve_local_model

from .backends import Generator, make_generator
from .backends.base import Answer, ChatRequest, Sampling
from .spec import CaptionerSpec, GenerationSpec


class RoleSplitGenerator:
    """``vision`` answers requests with an image, ``text`` the others; identity = both models."""

    def __init__(self, vision: Generator, text: Generator, caption_sampling: Sampling | None = None) -> None:
        self.vision, self.text, self.caption_sampling = vision, text, caption_sampling
        self.name = re.sub(r"[^A-Za-z0-9._+-]+", "-", f"{text.name}+{vision.name}")

    @property
    def fingerprint(self) -> str:
        both = f"text:{self.text.fingerprint}|vision:{self.vision.fingerprint}|{self.caption_sampling}"
        return hashlib.sha256(both.encode()).hexdigest()[:16]

    async def health(self) -> None:
        await asyncio.gather(self.vision.health(), self.text.health())

    async def generate(self, request: ChatRequest) -> Answer:
        if request.image_path is None:
            return await self.text.generate(request)
        if self.caption_sampling is not None:
            seed = request.sampling.seed
            request = request.model_copy(update={"sampling": self.caption_sampling.model_copy(
                update={"seed": seed})})
        return await self.vision.generate(request)

    async def aclose(self) -> None:
        await asyncio.gather(self.vision.aclose(), self.text.aclose())


def captioner_generation_spec(spec: GenerationSpec, captioner: CaptionerSpec) -> GenerationSpec:
    """The captioner as a GenerationSpec the shared backends take (transport settings from ``spec``)."""
    return spec.model_copy(update={
        "backend": captioner.backend, "model": captioner.model, "base_url": captioner.base_url,
        "model_revision": captioner.model_revision, "api_key_env": captioner.api_key_env,
        "device": captioner.device, "dtype": captioner.dtype,
        "trust_remote_code": captioner.trust_remote_code, "chat_format": "auto", "pad_to_square": False,
        "captioner": None,
    })


def make_generators(spec: GenerationSpec, storage_root: Path | None = None) -> Generator:
    """The profile's generator: ``spec.model`` alone, or with ``spec.captioner`` (emovit mode) the role split.
    ``model: tiny`` (transformers backend) resolves to the bundled tiny VLM under ``storage_root``."""
    spec = _resolved(spec, storage_root)
    if spec.captioner is None:
        return make_generator(spec)
    captioner = spec.captioner
    vision = make_generator(_resolved(captioner_generation_spec(spec, captioner), storage_root))
    text = make_generator(spec.model_copy(update={"captioner": None}))
    sampling = Sampling(temperature=captioner.temperature, top_p=1.0, max_tokens=captioner.max_tokens)
    return RoleSplitGenerator(vision, text, sampling)


def _resolved(spec: GenerationSpec, storage_root: Path | None) -> GenerationSpec:
    if spec.backend != "transformers" or storage_root is None:
        return spec

    return spec.model_copy(update={"model": resolve_local_model(spec.model, storage_root)})
