"""The one generator interface shared by the HTTP and in-process backends."""

from __future__ import annotations

import base64
import io
import mimetypes
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class GeneratorUnavailable(RuntimeError):
    """The generator cannot serve requests (server down, model missing, bad credentials)."""


class RequestFailed(RuntimeError):
    """A request failed (after the retries that could help); the runner records ``reason`` and the message.

    Reasons (docs/generation.md): ``connection``, ``timeout``, ``http_status``, ``bad_json``, ``bad_shape``,
    ``special_token``, ``too_long``; ``request_error`` for anything else.
    """

    def __init__(self, message: str, reason: str = "request_error") -> None:
        super().__init__(message)
        self.reason = reason


class Turn(BaseModel):
    """One chat turn. The request's image (if any) is attached to its first user turn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "user", "assistant"]
    text: str


class Sampling(BaseModel):
    """Per-request sampling parameters (part of the cache key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1)
    seed: int = Field(0, ge=0)


class ChatRequest(BaseModel):
    """A single chat-completion request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    turns: tuple[Turn, ...] = Field(..., min_length=1)
    image_path: str | None = None
    sampling: Sampling = Field(default_factory=Sampling)


class Answer(BaseModel):
    """A generator's reply with its finish reason and token usage."""

    model_config = ConfigDict(extra="forbid")

    text: str
    finish_reason: str = Field(..., description="'stop', 'length', ... as in the OpenAI schema")
    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)


@runtime_checkable
class Generator(Protocol):
    """Anything that answers :class:`ChatRequest` objects.

    ``fingerprint`` identifies the model (weights + format) and is only valid after :meth:`health`.
    """

    name: str

    @property
    def fingerprint(self) -> str: ...

    async def health(self) -> None:
        """Raise :class:`GeneratorUnavailable` with a hint when the generator cannot serve."""

    async def generate(self, request: ChatRequest) -> Answer: ...

    async def aclose(self) -> None: ...


def image_data_url(path: str | Path) -> str:
    """Encode an image file as a base64 ``data:`` URL (re-encoded as PNG if its type is unknown)."""
    path = Path(path)
    mime, _ = mimetypes.guess_type(path.name)
    data = path.read_bytes()
    if mime not in {"image/jpeg", "image/png", "image/webp", "image/gif"}:
        from PIL import Image

        buf = io.BytesIO()
        with Image.open(io.BytesIO(data)) as im:
            im.convert("RGB").save(buf, format="PNG")
        data, mime = buf.getvalue(), "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def decode_data_url(url: str) -> bytes:
    """Decode a base64 ``data:`` URL; raise ValueError for anything else (remote URLs are not fetched)."""
    if not url.startswith("data:") or ";base64," not in url:
        raise ValueError("only base64 data URLs are accepted (data:image/...;base64,...)")
    return base64.b64decode(url.split(";base64,", 1)[1], validate=True)
