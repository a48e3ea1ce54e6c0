"""A small OpenAI-compatible server around the in-process transformers backend.

``serve_generator(model_path)`` exposes ``GET /v1/models``, ``POST /v1/chat/completions`` (images as base64
data URLs), ``GET /health`` and ``GET /stats`` (request count and digests, used by the resume tests). It lets
the HTTP client path run for real on a CPU; production uses vLLM / llama.cpp / Ollama.
Run: ``python -m tinyemo_core.generate.server --model PATH --port 8000``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from tinyemo_core.net import free_port

from .backends.base import ChatRequest, Sampling, Turn, decode_data_url
from .backends.transformers_local import TransformersGenerator


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionBody(BaseModel):
    """The subset of the OpenAI chat-completions schema this server honours (other fields are ignored)."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = None
    stream: bool | None = False
    n: int | None = Field(1, ge=1)


def unsupported(body: ChatCompletionBody) -> str | None:
    """What this server cannot honour in ``body`` (answered with HTTP 400, never silently ignored)."""
    if body.stream:
        return "stream: true is not supported by this server; send stream: false (one JSON response)"
    if (body.n or 1) > 1:
        return f"n={body.n} is not supported by this server (one choice per request); send n: 1"
    return None


def _to_request(body: ChatCompletionBody) -> tuple[ChatRequest, Image.Image | None]:
    turns, image = [], None
    for m in body.messages:
        if m.role not in ("system", "user", "assistant"):
            raise HTTPException(400, f"unsupported role {m.role!r}")
        parts = [{"type": "text", "text": m.content or ""}] if not isinstance(m.content, list) else m.content
        texts = []
        for part in parts:
            if part.get("type") == "text":
                texts.append(part.get("text", ""))
            elif part.get("type") == "image_url":
                if image is not None:
                    raise HTTPException(400, "this server accepts one image per request")
                try:
                    raw = decode_data_url(part["image_url"]["url"])
                    image = Image.open(io.BytesIO(raw)).convert("RGB")
                except (KeyError, ValueError, OSError) as exc:
                    raise HTTPException(400, f"bad image_url: {exc}") from exc
        turns.append(Turn(role=m.role, text="\n".join(texts)))  # type: ignore[arg-type]
    sampling = Sampling(
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed or 0,
        max_tokens=body.max_completion_tokens or body.max_tokens or 256,
    )
    return ChatRequest(turns=tuple(turns), sampling=sampling), image


def create_app(generator: TransformersGenerator, served_name: str | None = None) -> FastAPI:
    """FastAPI app serving ``generator`` under the OpenAI chat-completions API."""
    name = served_name or generator.name
    app = FastAPI(title="tinyemo generator")

    @app.exception_handler(HTTPException)
    def openai_error(_request: Any, exc: HTTPException) -> JSONResponse:
        """Errors in the OpenAI shape (``{"error": {"message": ...}}``), which its clients display."""
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return JSONResponse({"error": {"message": exc.detail, "type": kind, "param": None,
                                       "code": exc.status_code}}, status_code=exc.status_code)
    stats: dict[str, Any] = {"chat_completions": 0, "digests": []}
    lock = threading.Lock()

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": name}

    @app.get("/v1/models")
    def models() -> dict:
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "owned_by": "tinyemo",
                    "tinyemo_fingerprint": generator.fingerprint,
                }
            ],
        }

    @app.get("/stats")
    def get_stats() -> dict:
        with lock:
            return {"chat_completions": stats["chat_completions"], "digests": list(stats["digests"])}

    @app.post("/v1/chat/completions")
    def chat(body: ChatCompletionBody) -> dict:  # sync: FastAPI runs it in its thread pool
        if body.model != name:
            raise HTTPException(404, f"model {body.model!r} not served; this server serves {name!r}")
        if (problem := unsupported(body)) is not None:
            raise HTTPException(400, problem)
        request, image = _to_request(body)
        answer = generator.generate_sync(request, image=image)
        digest = hashlib.sha256(json.dumps(body.model_dump(), sort_keys=True).encode()).hexdigest()
        with lock:
            stats["chat_completions"] += 1
            stats["digests"].append(digest)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text},
                    "finish_reason": answer.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
                "total_tokens": answer.prompt_tokens + answer.completion_tokens,
            },
        }

    return app


def serve_generator(
    model_path: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    served_name: str | None = None,
    device: str = "auto",
    trust_remote_code: bool = False,
    chat_format: str = "auto",
) -> None:
    """Load ``model_path`` with the transformers backend and serve it (blocks until interrupted)."""
    import uvicorn

    gen = TransformersGenerator(
        model_path, device=device, trust_remote_code=trust_remote_code, chat_format=chat_format
    )
    uvicorn.run(create_app(gen, served_name), host=host, port=port, log_level="warning")


@contextlib.contextmanager
def launch_server(
    model_path: str | Path,
    *,
    served_name: str = "tiny",
    port: int | None = None,
    startup_timeout_s: float = 120.0,
) -> Iterator[str]:
    """Run :func:`serve_generator` in a subprocess; yield its ``/v1`` base URL; terminate it on exit."""
    port = port or free_port()
    cmd = [
        sys.executable,
        "-m",
        "tinyemo_core.generate.server",
        "--model",
        str(model_path),
        "--port",
        str(port),
        "--served-name",
        served_name,
        "--device",
        "cpu",
    ]
    # stderr to a file, not a pipe: nobody reads a pipe while the server runs, and a full one (64 KiB of
    # logged tracebacks) blocks the server in its logger, so every request then times out
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"generator server exited: {log.read().decode(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"generator server on port {port} not healthy after {startup_timeout_s} s")
            time.sleep(0.2)
        yield f"{base}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="local model folder (save_pretrained layout)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--served-name", default=None, help="model id clients must send (default: folder name)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--trust-remote-code", action="store_true")
    ap.add_argument("--chat-format", default="auto", choices=["auto", "bunny"])
    a = ap.parse_args(argv)
    serve_generator(
        a.model,
        a.host,
        a.port,
        served_name=a.served_name,
        device=a.device,
        trust_remote_code=a.trust_remote_code,
        chat_format=a.chat_format,
    )


if __name__ == "__main__":
    main()
