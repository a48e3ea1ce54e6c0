"""OpenAI-compatible chat-completions client (vLLM, llama.cpp server, Ollama, ``tinyemo serve-generator``)."""

from __future__ import annotations

import asyncio
import os
import random
import re

import httpx

from tinyemo_core.identity import hash_json, served_identity

from ..bunny.image import square_png_data_url
from ..spec import GenerationSpec
from .base import Answer, ChatRequest, GeneratorUnavailable, RequestFailed, image_data_url

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


def to_openai_messages(request: ChatRequest, pad_fill: tuple[int, ...] | None = None) -> list[dict]:
    """Chat turns as OpenAI messages; the image is a base64 data-URL content part of the first user turn.

    ``pad_fill``: pad the image to a square with this RGB colour first (Bunny's ``image_aspect_ratio: pad``,
    which a converted LLaVA's server-side processor does not do), sent as lossless PNG.
    """
    messages: list[dict] = []
    attached = request.image_path is None
    for turn in request.turns:
        if turn.role == "user" and not attached:
            path = request.image_path
            url = square_png_data_url(path, pad_fill) if pad_fill else image_data_url(path)  # type: ignore[arg-type]
            content: str | list[dict] = [
                {"type": "image_url", "image_url": {"url": url}},
                {"type": "text", "text": turn.text},
            ]
            attached = True
        else:
            content = turn.text
        messages.append({"role": turn.role, "content": content})
    return messages


class OpenAIHTTPGenerator:
    """Async client with bounded concurrency, timeouts and retries (exponential backoff + full jitter)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        model_revision: str | None = None,
        max_concurrency: int = 16,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        pad_to_square: tuple[int, ...] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = re.sub(r"[^A-Za-z0-9._-]+", "-", model.strip("/").split("/")[-1])
        self.model_revision = model_revision
        self.pad_fill = tuple(pad_to_square) if pad_to_square else None
        self.max_retries = max_retries
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self._sem = asyncio.Semaphore(max_concurrency)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
        )
        self._fingerprint: str | None = None
        self.retries_done = 0

    @classmethod
    def from_spec(cls, spec: GenerationSpec) -> OpenAIHTTPGenerator:
        return cls(
            spec.base_url,
            spec.model,
            api_key=os.environ.get(spec.api_key_env),
            model_revision=spec.model_revision,
            max_concurrency=spec.max_concurrency,
            timeout_s=spec.timeout_s,
            max_retries=spec.max_retries,
            backoff_base_s=spec.backoff_base_s,
            backoff_max_s=spec.backoff_max_s,
            pad_to_square=tuple(spec.pad_color) if spec.pad_to_square else None,
        )

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            raise RuntimeError("call `await generator.health()` first: the fingerprint comes from /v1/models")
        return self._fingerprint

    async def health(self) -> None:
        """``GET /v1/models``; the served model must be listed. Sets the fingerprint."""
        try:
            resp = await self._client.get("/models")
        except httpx.HTTPError as exc:
            raise GeneratorUnavailable(
                f"no OpenAI-compatible server at {self.base_url} ({exc!r}); start one, e.g. "
                f"`vllm serve {self.model} --port 8000` or `tinyemo serve-generator --model PATH`"
            ) from exc
        if resp.status_code in (401, 403):
            raise GeneratorUnavailable(f"{self.base_url} rejected the API key (HTTP {resp.status_code})")
        if resp.status_code != 200:
            raise GeneratorUnavailable(
                f"{self.base_url}/models answered HTTP {resp.status_code}: {resp.text[:200]}"
            )
        models = {m.get("id"): m for m in resp.json().get("data", [])}
        if self.model not in models:
            raise GeneratorUnavailable(
                f"model {self.model!r} is not served at {self.base_url}; served: {sorted(models)}"
            )
        info = models[self.model]
        # tinyemo's own server reports its folder's content identity; vLLM only the model path (`root`), then
        # the endpoint is part of the identity. Padded pixels differ: a separate cache (no key when off).
        pad = list(self.pad_fill) if self.pad_fill else None
        ident = served_identity(self.base_url, self.model, self.model_revision, info, pad_to_square=pad)
        self._fingerprint = hash_json(ident)[:16]

    def _payload(self, request: ChatRequest) -> dict:
        s = request.sampling
        return {
            "model": self.model,
            "messages": to_openai_messages(request, self.pad_fill),
            "max_tokens": s.max_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "seed": s.seed,
        }

    async def generate(self, request: ChatRequest) -> Answer:
        """POST ``/chat/completions``; retries 408/409/429/5xx and connection errors, honours Retry-After."""
        payload = await asyncio.to_thread(self._payload, request)  # file read + base64 off the event loop
        async with self._sem:
            for attempt in range(self.max_retries + 1):
                delay = min(self.backoff_max_s, self.backoff_base_s * 2**attempt) * random.random()
                try:
                    resp = await self._client.post("/chat/completions", json=payload)
                except (httpx.TransportError, httpx.TimeoutException) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                else:
                    if resp.status_code == 200:
                        return _parse(resp.json())
                    error = f"HTTP {resp.status_code}: {resp.text[:300]}"
                    if resp.status_code not in RETRY_STATUS:
                        raise RequestFailed(error)
                    retry_after = resp.headers.get("retry-after", "")
                    if retry_after.replace(".", "", 1).isdigit():
                        delay = min(self.backoff_max_s, float(retry_after))
                if attempt < self.max_retries:
                    self.retries_done += 1
                    await asyncio.sleep(delay)
        raise RequestFailed(f"gave up after {self.max_retries + 1} attempts; last error: {error}")

    async def aclose(self) -> None:
        await self._client.aclose()


def _parse(body: dict) -> Answer:
    choice = body["choices"][0]
    usage = body.get("usage") or {}
    return Answer(
        text=choice["message"].get("content") or "",
        finish_reason=choice.get("finish_reason") or "stop",
        prompt_tokens=usage.get("prompt_tokens") or 0,
        completion_tokens=usage.get("completion_tokens") or 0,
    )
