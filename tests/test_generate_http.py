"""Generation over real HTTP: a tiny random LLaVA served by the generator server in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from data_fixtures import write_flat_manifest

from tinyemo_core.generate.backends import ChatRequest, GeneratorUnavailable, RequestFailed, Sampling, Turn
from tinyemo_core.generate.backends.openai_http import OpenAIHTTPGenerator
from tinyemo_core.generate.backends.transformers_local import TransformersGenerator
from tinyemo_core.generate.cache import GenerationCache
from tinyemo_core.generate.chains import label_lists, load_manifest, plan
from tinyemo_core.generate.runner import collect, run_generation
from tinyemo_core.generate.server import launch_server
from tinyemo_core.generate.spec import GenerationSpec
from tinyemo_core.generate.tiny_model import build_tiny_vlm
from tinyemo_core.net import free_port

pytestmark = pytest.mark.slow  # the module fixture builds a model and starts a server (~15-40 s)

RELAXED = {"reject_truncated": False, "require_question_mark": False}  # random weights never stop or ask


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny model, a manifest of 12 small images, and the model served on a free loopback port."""
    root = tmp_path_factory.mktemp("gen")
    model = build_tiny_vlm(root / "model", seed=0)
    write_flat_manifest(root, [["joy", "fear", "sadness"][i % 3] for i in range(12)], size=(40, 30))
    with launch_server(model, served_name="tiny") as url:
        yield {"root": root, "model": model, "url": url, "manifest": root / "manifest.parquet"}


def _stats(url: str) -> int:
    return httpx.get(url.removesuffix("/v1") + "/stats").json()["chat_completions"]


def _spec(world: dict, **kw) -> GenerationSpec:
    base = dict(
        model="tiny",
        base_url=world["url"],
        temperature=0.0,
        max_tokens=8,
        max_concurrency=4,
        validation=RELAXED,
        max_retries=2,
        backoff_base_s=0.01,
    )
    return GenerationSpec(**(base | kw))


def _chains(world: dict, spec: GenerationSpec, n: int):
    rows = load_manifest([world["manifest"]], spec, image_root=world["root"])[:n]
    return rows, plan(rows, spec)


def test_client_matches_in_process_backend(world: dict) -> None:
    req = ChatRequest(
        turns=(Turn(role="user", text="Describe the image."),),
        image_path=str(world["root"] / "1.png"),
        sampling=Sampling(max_tokens=6),
    )

    async def go() -> tuple:
        gen = OpenAIHTTPGenerator(world["url"], "tiny")
        await gen.health()
        a, b = await asyncio.gather(gen.generate(req), gen.generate(req))
        await gen.aclose()
        return gen.fingerprint, a, b

    fp, a, b = asyncio.run(go())
    local = TransformersGenerator(world["model"], device="cpu").generate_sync(req)
    assert (
        a == b == local
    )  # greedy decoding: the HTTP path returns exactly what the model generates in-process
    assert (
        a.completion_tokens == 6 and a.finish_reason == "length" and a.prompt_tokens > 16
    )  # 16 image tokens
    assert len(fp) == 16


def test_health_errors(world: dict) -> None:
    async def health(url: str, model: str) -> None:
        gen = OpenAIHTTPGenerator(url, model)
        try:
            await gen.health()
        finally:
            await gen.aclose()

    with pytest.raises(GeneratorUnavailable, match="not served"):
        asyncio.run(health(world["url"], "other-model"))
    with pytest.raises(GeneratorUnavailable, match="no OpenAI-compatible server"):
        asyncio.run(health(f"http://127.0.0.1:{free_port()}/v1", "tiny"))


class _Flaky:
    """A real HTTP proxy in front of the server that answers the first ``fail`` POSTs with 503."""

    def __init__(self, upstream: str, fail: int) -> None:
        self.posts, outer = 0, self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def _send(self, code: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                r = httpx.get(upstream + self.path.removeprefix("/v1"))
                self._send(r.status_code, r.content)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts += 1
                if outer.posts <= fail:
                    return self._send(503, b'{"error": "overloaded"}', {"Retry-After": "0"})
                r = httpx.post(
                    upstream + self.path.removeprefix("/v1"),
                    content=body,
                    headers={"Content-Type": "application/json"},
                    timeout=60,
                )
                self._send(r.status_code, r.content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


def test_retries_503_then_succeeds_or_gives_up(world: dict) -> None:
    req = ChatRequest(turns=(Turn(role="user", text="hi"),), sampling=Sampling(max_tokens=3))

    async def call(url: str, retries: int) -> tuple:
        gen = OpenAIHTTPGenerator(url, "tiny", max_retries=retries, backoff_base_s=0.01)
        try:
            return await gen.generate(req), gen.retries_done
        finally:
            await gen.aclose()

    flaky = _Flaky(world["url"], fail=2)
    answer, retries = asyncio.run(call(flaky.url, 3))
    assert retries == 2 and flaky.posts == 3 and answer.completion_tokens == 3
    flaky2 = _Flaky(world["url"], fail=5)
    with pytest.raises(RequestFailed, match="HTTP 503"):
        asyncio.run(call(flaky2.url, 1))
    assert flaky2.posts == 2
    flaky.server.shutdown()
    flaky2.server.shutdown()


def test_cache_hit_miss_and_export(world: dict, tmp_path: Path) -> None:
    spec = _spec(world)
    rows, chains = _chains(world, spec, 2)
    store = tmp_path / "store"
    before = _stats(world["url"])
    rep = run_generation(chains, OpenAIHTTPGenerator.from_spec(spec), spec, store)
    assert (rep.sent, rep.cached, _stats(world["url"]) - before) == (10, 0, 10)
    rep2 = run_generation(chains, OpenAIHTTPGenerator.from_spec(spec), spec, store)
    assert (rep2.sent, rep2.cached, _stats(world["url"]) - before) == (0, 10, 10)
    longer = spec.model_copy(update={"max_tokens": 9})  # sampling parameters are part of the key
    rep3 = run_generation(chains, OpenAIHTTPGenerator.from_spec(longer), longer, store)
    assert (rep3.sent, _stats(world["url"]) - before) == (10, 20)
    results = collect(chains, spec, store / rep.generator_dir, rep.fingerprint)
    assert all(r.status == "ok" for r in results)
    from tinyemo_core.generate.export import export_all

    summary = export_all(results, tmp_path / "out", world["root"], label_lists(rows, spec), conditional=True)
    assert summary["stats"]["pretrain"]["train"]["records"] == 6
    assert summary["stats"]["emoreason"]["train"]["records"] == 2


def test_failures_recorded_counted_and_retried(world: dict, tmp_path: Path) -> None:
    spec = _spec(world, validation={"reject_truncated": True, "require_question_mark": False})
    _, chains = _chains(world, spec, 2)
    before = _stats(world["url"])
    rep = run_generation(chains, OpenAIHTTPGenerator.from_spec(spec), spec, tmp_path)
    # random weights never emit EOS within 8 tokens: every first step fails as truncated, second steps blocked
    assert rep.failed == {"truncated": 6} and rep.blocked == 4 and rep.sent == 6
    again = run_generation(chains, OpenAIHTTPGenerator.from_spec(spec), spec, tmp_path)
    assert again.sent == 0 and again.failed == {"truncated": 6}  # still reported, not dropped
    retry = spec.model_copy(update={"retry_failed": True})
    rep3 = run_generation(chains, OpenAIHTTPGenerator.from_spec(retry), retry, tmp_path)
    assert rep3.sent == 6 and _stats(world["url"]) - before == 12
    cache = GenerationCache(tmp_path / rep.generator_dir / "demo")
    assert {r["attempt"] for r in cache.records.values()} == {1} and len(cache) == 6


def test_transformers_backend_in_process(world: dict, tmp_path: Path) -> None:
    spec = GenerationSpec(
        model=str(world["model"]),
        backend="transformers",
        device="cpu",
        temperature=0.0,
        max_tokens=4,
        validation=RELAXED,
    )
    _, chains = _chains(world, spec, 1)
    from tinyemo_core.generate.backends import make_generator

    rep = run_generation(chains, make_generator(spec), spec, tmp_path)
    assert rep.sent == 5 and rep.completion_tokens == 20 and not rep.failed


KILL_SCRIPT = """
import asyncio, json, sys
from tinyemo_core.generate.backends.openai_http import OpenAIHTTPGenerator
from tinyemo_core.generate.runner import run_generation
from tinyemo_core.generate.spec import GenerationSpec
from tinyemo_core.generate.chains import load_manifest, plan
a = json.loads(sys.argv[1])
spec = GenerationSpec.model_validate(a["spec"])
chains = plan(load_manifest([a["manifest"]], spec, image_root=a["root"]), spec)
run_generation(chains, OpenAIHTTPGenerator.from_spec(spec), spec, a["store"])
"""


@pytest.mark.slow
def test_kill_mid_run_then_resume_sends_only_missing(world: dict, tmp_path: Path) -> None:
    spec = _spec(world, max_tokens=24, max_concurrency=2)
    _, chains = _chains(world, spec, 12)
    total = sum(len(c.steps) for c in chains)
    store = tmp_path / "store"
    arg = json.dumps(
        {
            "spec": spec.model_dump(),
            "manifest": str(world["manifest"]),
            "root": str(world["root"]),
            "store": str(store),
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, arg], env=os.environ | {"PYTHONPATH": os.getcwd()}
    )
    deadline = time.monotonic() + 120
    while sum(p.read_bytes().count(b"\n") for p in store.rglob("part-*.jsonl")) < 12:
        assert proc.poll() is None and time.monotonic() < deadline, (
            "generation ended before it could be killed"
        )
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)  # let the server finish any request the killed client left in flight
    (gen_dir,) = store.iterdir()
    done = len(GenerationCache(gen_dir / "demo"))
    assert 12 <= done < total
    before = _stats(world["url"])
    rep = run_generation(chains, OpenAIHTTPGenerator.from_spec(spec), spec, store)
    assert rep.sent == total - done == _stats(world["url"]) - before and rep.cached == done
    cache = GenerationCache(gen_dir / "demo")
    lines = sum(p.read_bytes().count(b"\n") for p in cache.shards())
    assert len(cache) == total and lines - cache.corrupt_lines == total  # no duplicate records
    assert run_generation(chains, OpenAIHTTPGenerator.from_spec(spec), spec, store).sent == 0
