"""OpenAI-compatible chat-completions client (vLLM, llama.cpp server, Ollama, ``tinyemo serve-generator``)."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import random
import re
import ssl

import httpx

from tinyemo_core.identity import hash_json, served_identity

from ..bunny.image import square_png_data_url
from ..spec import GenerationSpec
from ..validate import hostile_detail
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


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS context per process (httpx's default CA bundle): building one costs ~0.1 s, and every event
    loop opens a fresh client (docs/generation.md, "client lifecycle")."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def served_model_name(model: str) -> str:
    """The store-folder name of a served model id (``org/name`` -> ``name``; safe characters only)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", model.strip("/").split("/")[-1])


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
        self.name = served_model_name(model)
        self.model_revision = model_revision
        self.pad_fill = tuple(pad_to_square) if pad_to_square else None
        self.max_retries = max_retries
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.max_concurrency = max_concurrency
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
        # One client per event loop (httpx pools keep-alive connections bound to the loop that opened them):
        # created on first use inside a loop, closed by aclose(); a later loop gets a fresh one.
        self._client: httpx.AsyncClient | None = None
        self._sem: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fingerprint: str | None = None
        self.retries_done = 0

    def _http(self) -> httpx.AsyncClient:
        """The client of the running event loop (opened here on first use in that loop)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client.is_closed or self._loop is not loop:
            if self._client is not None and not self._client.is_closed and self._loop is not None:
                if not self._loop.is_closed():  # still usable there: the caller forgot aclose(), not us
                    raise RuntimeError(
                        "OpenAIHTTPGenerator used from a second event loop while its client is open in "
                        "another; await generator.aclose() in the first loop (runner.run_sync does)"
                    )
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=self._headers,
                verify=_ssl_context(),
                timeout=self._timeout,
                limits=httpx.Limits(
                    max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency
                ),
            )
            self._sem, self._loop = asyncio.Semaphore(self.max_concurrency), loop
        return self._client

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
            resp = await self._http().get("/models")
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
        try:
            listed = resp.json().get("data", [])
            models = {m.get("id"): m for m in listed if isinstance(m, dict)}
        except (ValueError, AttributeError) as exc:
            raise GeneratorUnavailable(
                f"{self.base_url}/models did not answer an OpenAI model list ({resp.text[:200]!r})"
            ) from exc
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
        """POST ``/chat/completions``. Retried (backoff + full jitter, Retry-After honoured): connection
        errors, timeouts, HTTP 408/409/429/5xx, a 200 whose body is not JSON or not a chat completion.
        Not retried: other 4xx, answers with chat-template special tokens or longer than ``max_tokens``
        allows. Every failure raises :class:`RequestFailed` with a reason (docs/generation.md)."""
        payload = await asyncio.to_thread(self._payload, request)  # file read + base64 off the event loop
        client = self._http()
        assert self._sem is not None
        max_tokens = request.sampling.max_tokens
        async with self._sem:
            for attempt in range(self.max_retries + 1):
                delay = min(self.backoff_max_s, self.backoff_base_s * 2**attempt) * random.random()
                try:
                    resp = await client.post("/chat/completions", json=payload)
                except httpx.TimeoutException as exc:
                    reason, error = "timeout", f"{type(exc).__name__}: {exc}"
                except httpx.TransportError as exc:
                    reason, error = "connection", f"{type(exc).__name__}: {exc}"
                else:
                    if resp.status_code == 200:
                        try:
                            answer = parse_completion(resp.content)
                        except RequestFailed as exc:
                            reason, error = exc.reason, str(exc)
                        else:
                            check_answer(answer, max_tokens)  # raises: retrying a greedy answer repeats it
                            return answer
                    else:
                        reason, error = "http_status", f"HTTP {resp.status_code}: {resp.text[:300]}"
                        if resp.status_code not in RETRY_STATUS:
                            raise RequestFailed(error, reason)
                        retry_after = resp.headers.get("retry-after", "")
                        if retry_after.replace(".", "", 1).isdigit():
                            delay = min(self.backoff_max_s, float(retry_after))
                if attempt < self.max_retries:
                    self.retries_done += 1
                    await asyncio.sleep(delay)
        raise RequestFailed(f"gave up after {self.max_retries + 1} attempts; last error: {error}", reason)

    async def aclose(self) -> None:
        """Close this loop's client (idempotent); the generator stays usable from a later event loop."""
        client, self._client, self._sem, self._loop = self._client, None, None, None
        if client is not None:
            await client.aclose()


def parse_completion(raw: bytes) -> Answer:
    """A chat-completion body -> :class:`Answer`; :class:`RequestFailed` (``bad_json``/``bad_shape``) for
    anything else. Unknown extra fields are ignored; absent ``usage`` counts as zero tokens."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestFailed(f"the body is not JSON ({exc}): {raw[:120]!r}", "bad_json") from exc
    try:
        choice = body["choices"][0]
        content = choice["message"]["content"]
        finish = choice.get("finish_reason") or "stop"
        usage = body.get("usage") or {}
        if not isinstance(content, str) or not isinstance(finish, str) or not isinstance(usage, dict):
            raise TypeError("content/finish_reason must be strings, usage an object")
        return Answer(
            text=content,
            finish_reason=finish,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise RequestFailed(
            f"not a chat completion ({type(exc).__name__}: {exc}): {raw[:120]!r}", "bad_shape"
        ) from exc


def check_answer(answer: Answer, max_tokens: int) -> None:
    """Raise :class:`RequestFailed` for an answer no well-behaved server sends for this request."""
    verdict = hostile_detail(answer.text, answer.completion_tokens, max_tokens)
    if verdict is not None:
        raise RequestFailed(verdict[1], verdict[0])
