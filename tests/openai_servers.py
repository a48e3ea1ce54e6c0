"""Two real OpenAI-compatible servers on loopback for the served-route tests (tests/test_served_route.py).

- :func:`serve_generator_thread`: the project's own ``serve-generator`` app (FastAPI on uvicorn, HTTP/1.1
  keep-alive, like vLLM) around a tiny VLM, in a thread of the test process.
- :class:`AiohttpOpenAI`: a second server on a different stack (aiohttp, keep-alive on) that answers like a
  third-party server does: no ``usage``, unknown extra fields, a model id containing ``/``. Its answers
  are written from the prompt (a question, or ``Reasoning: ...\\nPredicted Label: <a label of the prompt>``).
  ``hostile`` makes the first distinct requests hostile, one kind each (:data:`HOSTILE`): the transient kinds
  misbehave on the first attempt only (a retry gets a good answer), the permanent ones on every attempt.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

#: kind -> (transient?, the reason a run records when the kind is permanent)
HOSTILE: dict[str, tuple[bool, str | None]] = {
    "not_json": (True, None),
    "empty_choices": (True, None),
    "http_503": (True, None),
    "closed_connection": (True, None),
    "timeout": (True, None),
    "missing_content": (False, "bad_shape"),
    "http_400": (False, "http_status"),
    "im_end": (False, "special_token"),
    "eot_id": (False, "special_token"),
    "inst": (False, "special_token"),
    "endoftext": (False, "special_token"),
    "eos": (False, "special_token"),
    "too_long": (False, "too_long"),
    "usage_over_max": (False, "too_long"),
}
TIMEOUT_S = 2.0  # the client timeout the hostile test uses; a "timeout" answer sleeps longer


def _answer_for(messages: list[dict]) -> str:
    text = " ".join(
        m["content"] if isinstance(m["content"], str)
        else " ".join(p.get("text", "") for p in m["content"] if p.get("type") == "text")
        for m in messages
    )
    if m := re.search(r"the correct label is ([a-z]+)", text):  # the conditional line, when present
        return f"Reasoning: the scene supports it.\nPredicted Label: {m.group(1)}"
    if "Predicted Label" in text:
        words = re.findall(r"[a-z]+", text.split("following", 1)[-1]) or ["joy"]
        labels = [w for w in words if w in {"joy", "fear", "sadness", "awe", "anger", "amusement",
                                             "contentment", "disgust", "excitement", "neutral"}]
        label = labels[0] if labels else words[0]
        return f"Reasoning: the colours and faces in the image suggest it.\nPredicted Label: {label}"
    return f"What emotion does this image evoke? It shows a calm scene ({len(text) % 7} people)."


class AiohttpOpenAI:
    """A second-stack OpenAI-compatible server (aiohttp) in its own thread; ``chat_completions`` counts POSTs
    (answered or not), ``log`` holds (request digest, kind) per POST."""

    def __init__(self, model_id: str = "org/tiny-vlm-v1", hostile: list[str] | None = None) -> None:
        self.model_id = model_id
        self.hostile = list(hostile or [])
        self.chat_completions = 0
        self.log: list[tuple[str, str]] = []
        self._assigned: dict[str, str] = {}
        self._attempts: Counter = Counter()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(120):
            raise RuntimeError("aiohttp test server did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _kind(self, body: dict) -> str:
        key = json.dumps({k: body.get(k) for k in ("messages", "max_tokens")}, sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        with self._lock:
            self.chat_completions += 1
            if digest not in self._assigned:
                n = len(self._assigned)
                self._assigned[digest] = self.hostile[n] if n < len(self.hostile) else "ok"
            self._attempts[digest] += 1
            kind = self._assigned[digest]
            if kind in HOSTILE and HOSTILE[kind][0] and self._attempts[digest] > 1:
                kind = "ok"  # transient: the retry is answered properly
            self.log.append((digest, kind))
        return kind

    def assigned(self) -> dict[str, str]:
        with self._lock:
            return dict(self._assigned)

    def _run(self) -> None:
        from aiohttp import web

        async def models(_request: web.Request) -> web.Response:
            return web.json_response({"object": "list", "data": [
                {"id": self.model_id, "object": "model", "created": 0, "owned_by": "test",
                 "root": "/models/" + self.model_id, "max_model_len": 2048, "permission": [{"x": 1}]}]})

        async def chat(request: web.Request) -> web.StreamResponse:
            body = await request.json()
            kind = self._kind(body)
            max_tokens = int(body.get("max_tokens") or 16)
            text = _answer_for(body["messages"])
            completion = {
                "id": "cmpl-test", "object": "chat.completion", "created": int(time.time()),
                "model": self.model_id, "system_fingerprint": "fp_test", "service_tier": None,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                             "logprobs": None, "finish_reason": "stop", "stop_reason": None}],
                "prompt_logprobs": None, "kv_transfer_params": {"unknown": [1, 2]},
            }  # no "usage": several servers omit it
            if body.get("model") != self.model_id:
                return web.json_response({"error": {"message": "unknown model"}}, status=404)
            if kind == "not_json":
                return web.Response(text="<html>502 Bad Gateway</html>", content_type="text/html")
            if kind == "empty_choices":
                return web.json_response({"choices": []})
            if kind == "missing_content":
                completion["choices"][0]["message"] = {"role": "assistant"}
            if kind == "http_503":
                return web.json_response({"error": {"message": "overloaded"}}, status=503,
                                         headers={"Retry-After": "0"})
            if kind == "http_400":
                return web.json_response({"error": {"message": "prompt too long"}}, status=400)
            if kind == "closed_connection":
                assert request.transport is not None
                request.transport.close()
                return web.Response()
            if kind == "timeout":
                await asyncio.sleep(TIMEOUT_S * 2.5)
            tokens = {"im_end": "<|im_end|>", "eot_id": "<|eot_id|>", "inst": "[INST]",
                      "endoftext": "<|endoftext|>", "eos": "</s>"}
            if kind in tokens:
                completion["choices"][0]["message"]["content"] = f"{text}{tokens[kind]}user: next"
            if kind == "too_long":
                completion["choices"][0]["message"]["content"] = text + " more" * 40_000  # 200 kB
            if kind == "usage_over_max":
                completion["usage"] = {"prompt_tokens": 5, "completion_tokens": max_tokens * 3}
            return web.json_response(completion)

        async def main() -> None:
            app = web.Application(client_max_size=64 << 20)
            app.router.add_get("/v1/models", models)
            app.router.add_post("/v1/chat/completions", chat)
            runner = web.AppRunner(app, access_log=None, keepalive_timeout=75.0)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._stop = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()

        asyncio.run(main())

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@contextmanager
def serve_generator_thread(model_dir: Path, served_name: str = "tiny"):
    """The project's serve-generator app on uvicorn in a thread; yields (base url, chat-completion count)."""
    import httpx
    import uvicorn

    from tinyemo_core.generate.backends.transformers_local import TransformersGenerator
    from tinyemo_core.generate.server import create_app
    from tinyemo_core.net import free_port

    port = free_port()
    app = create_app(TransformersGenerator(model_dir, device="cpu"), served_name)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_keep_alive=75))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # shared CPUs: model load + startup can be slow
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("uvicorn did not start")
        time.sleep(0.02)

    def count() -> int:
        return httpx.get(base + "/stats").json()["chat_completions"]

    try:
        yield f"{base}/v1", count
    finally:
        server.should_exit = True
        thread.join(10)
