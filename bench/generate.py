"""Benchmark generation plumbing on a tiny random model served locally (last line: JSON).

1. Client throughput: N concurrent requests through ``OpenAIHTTPGenerator`` vs the same requests sent with raw
   httpx (the server driven directly). Goal: ratio >= 0.9 (the client is never the bottleneck).
2. Cost of a fully cached rerun (plan + key hashing + cache load + lookups), scaled to 10k requests.
3. Client overhead per request in µs against a keep-alive server (uvicorn, HTTP/1.1, like vLLM) that
   answers a canned completion at once (a separate process, so model compute and its noise stay out of the
   difference): sequential requests, interleaved, through the client vs raw httpx with the same payload
   (median of the paired latency differences), repeated ``--repeats`` times: the headline is the median
   over repeats. The same measurement against the tiny model server is reported too (noisy on shared
   CPUs). Plus the client's own payload build (file read + base64, with and without ``pad_to_square``)
   timed without the network.
4. Lifecycle cost: one client per event loop (``run_sync``) means a command's first request opens a
   connection; measured as a fresh loop + client + one request vs one more request on a warm client.
Usage: python bench/generate.py [--concurrency 8] [--requests 64] [--cached-requests 10000]
                                [--overhead-requests 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from tinyemo_core.generate.backends import ChatRequest, Sampling, Turn
from tinyemo_core.generate.backends.openai_http import OpenAIHTTPGenerator, to_openai_messages
from tinyemo_core.generate.cache import GenerationCache, request_key
from tinyemo_core.generate.chains import load_manifest, plan, render
from tinyemo_core.generate.runner import generator_dir, run_generation, run_sync
from tinyemo_core.generate.server import launch_server
from tinyemo_core.generate.spec import GenerationSpec
from tinyemo_core.generate.tiny_model import build_tiny_vlm


async def _direct(url: str, payload: dict, n: int, conc: int) -> float:
    sem = asyncio.Semaphore(conc)
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:

        async def one() -> None:
            async with sem:
                (await client.post("/chat/completions", json=payload)).raise_for_status()

        t = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return n / (time.perf_counter() - t)


async def _client(url: str, req: ChatRequest, n: int, conc: int) -> float:
    gen = OpenAIHTTPGenerator(url, "tiny", max_concurrency=conc)
    await gen.health()
    t = time.perf_counter()
    await asyncio.gather(*(gen.generate(req) for _ in range(n)))
    rate = n / (time.perf_counter() - t)
    await gen.aclose()
    return rate


async def _overhead(url: str, req: ChatRequest, n: int) -> dict:
    gen = OpenAIHTTPGenerator(url, "tiny", max_concurrency=1)
    padded = OpenAIHTTPGenerator(url, "tiny", max_concurrency=1, pad_to_square=(127, 127, 127))
    await gen.health()
    payload = gen._payload(req)
    raw_s, client_s = [], []
    async with httpx.AsyncClient(base_url=url, timeout=120) as raw:
        for _ in range(n):  # interleaved, so server-side drift hits both alike
            t = time.perf_counter()
            (await raw.post("/chat/completions", json=payload)).raise_for_status()
            raw_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            await gen.generate(req)
            client_s.append(time.perf_counter() - t)
    await gen.aclose()
    await padded.aclose()
    m = max(50, n)
    t = time.perf_counter()
    for _ in range(m):
        gen._payload(req)
    build = (time.perf_counter() - t) / m
    t = time.perf_counter()
    for _ in range(m):
        padded._payload(req)
    build_pad = (time.perf_counter() - t) / m
    diffs = [c - r for c, r in zip(client_s, raw_s, strict=True)]
    q = statistics.quantiles(diffs, n=4)
    return {
        "overhead_requests": n,
        "seq_direct_ms_median": round(statistics.median(raw_s) * 1e3, 3),
        "seq_client_ms_median": round(statistics.median(client_s) * 1e3, 3),
        "client_overhead_us_per_request": round(statistics.median(diffs) * 1e6, 1),  # median paired diff
        "client_overhead_us_iqr": [round(q[0] * 1e6, 1), round(q[2] * 1e6, 1)],
        "client_payload_us": round(build * 1e6, 1),
        "client_payload_pad_to_square_us": round(build_pad * 1e6, 1),
    }


CANNED_SERVER = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

ANSWER = {"id": "c", "object": "chat.completion", "created": 0, "model": "tiny",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "Calm"},
                       "finish_reason": "length"}],
          "usage": {"prompt_tokens": 20, "completion_tokens": 1, "total_tokens": 21}}

async def models(request):
    return JSONResponse({"object": "list", "data": [{"id": "tiny", "object": "model"}]})

async def chat(request):
    await request.body()
    return JSONResponse(ANSWER)

app = Starlette(routes=[Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", timeout_keep_alive=75)
"""


def _canned_server():
    """A keep-alive uvicorn server answering a canned completion, in a subprocess; returns (proc, url)."""
    import subprocess
    import sys

    from tinyemo_core.net import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", CANNED_SERVER, str(port)])
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/models", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("canned server did not start")
        time.sleep(0.1)


def _overhead_repeats(url: str, req: ChatRequest, n: int, repeats: int, prefix: str) -> dict:
    runs = [asyncio.run(_overhead(url, req, n)) for _ in range(repeats)]
    per_repeat = [r["client_overhead_us_per_request"] for r in runs]
    return {
        f"{prefix}requests_per_repeat": n,
        f"{prefix}repeats": repeats,
        f"{prefix}seq_direct_ms_median": statistics.median(r["seq_direct_ms_median"] for r in runs),
        f"{prefix}client_overhead_us_per_repeat": per_repeat,
        f"{prefix}client_overhead_us_median_of_repeats": round(statistics.median(per_repeat), 1),
        "client_payload_us": runs[-1]["client_payload_us"],
        "client_payload_pad_to_square_us": runs[-1]["client_payload_pad_to_square_us"],
    }


def _lifecycle(url: str, req: ChatRequest, n: int) -> dict:
    """Median cost of a fresh event loop + client + first request (what each synchronous command pays)
    vs a request on a warm keep-alive client."""
    gen = OpenAIHTTPGenerator(url, "tiny", max_concurrency=1)
    fresh, warm = [], []
    for _ in range(n):
        t = time.perf_counter()
        run_sync(gen, lambda: gen.generate(req))
        fresh.append(time.perf_counter() - t)

        async def two() -> float:
            await gen.generate(req)
            t1 = time.perf_counter()
            await gen.generate(req)
            return time.perf_counter() - t1

        warm.append(run_sync(gen, two))
    return {
        "lifecycle_fresh_loop_first_request_ms_median": round(statistics.median(fresh) * 1e3, 3),
        "lifecycle_warm_request_ms_median": round(statistics.median(warm) * 1e3, 3),
        "lifecycle_cost_ms": round((statistics.median(fresh) - statistics.median(warm)) * 1e3, 3),
    }


def _cached_rerun(url: str, root: Path, n_requests: int) -> dict:
    n_images = -(-n_requests // 5)  # TinyEmo: 5 requests per image
    Image.new("RGB", (32, 32), (10, 200, 30)).save(root / "img.png")
    rows = [
        dict(
            image_id=f"{i:08x}",
            path="img.png",
            split="train",
            label="joy",
            labels=["joy"],
            taxonomy="t",
            dataset="bench",
            status="ok",
            error=None,
            attributes="{}",
        )
        for i in range(n_images)
    ]
    pq.write_table(pa.Table.from_pylist(rows), root / "m.parquet")
    spec = GenerationSpec(model="tiny", base_url=url, temperature=0.0, max_tokens=8)
    chains = plan(load_manifest([root / "m.parquet"], spec, image_root=root), spec)
    asyncio.run(_fill_cache(chains, spec, root))
    gen = OpenAIHTTPGenerator.from_spec(spec)
    t = time.perf_counter()
    report = run_generation(chains, gen, spec, root / "store")
    wall = time.perf_counter() - t
    assert report.sent == 0 and report.cached == report.total, report.as_dict()
    return {
        "cached_requests": report.total,
        "cached_rerun_s": round(wall, 3),
        "cached_rerun_s_per_10k": round(wall * 10_000 / report.total, 3),
    }


async def _fill_cache(chains: list, spec: GenerationSpec, root: Path) -> None:
    gen = OpenAIHTTPGenerator.from_spec(spec)
    await gen.health()
    await gen.aclose()
    # Pre-fill the cache with one record per planned request (this measures the lookup path, not generation).
    with GenerationCache(root / "store" / generator_dir(gen) / "bench", fsync_every=10_000) as cache:
        for c in chains:
            answers: list[str] = []
            for i, step in enumerate(c.steps):
                key = request_key(gen.fingerprint, c.row.image_id, render(c, i, answers, spec))
                answers.append(f"Is answer {i} of {c.task} for {c.row.image_id} here?")
                cache.put(key, {"status": "ok", "reason": None, "text": answers[-1], "kind": step.kind})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--cached-requests", type=int, default=10_000)
    ap.add_argument("--overhead-requests", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--overhead-only", action="store_true",
                    help="only the canned keep-alive server parts (client overhead, lifecycle)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_tiny_vlm(root / "model")
        Image.new("RGB", (64, 48), (200, 40, 40)).save(root / "q.png")
        req = ChatRequest(
            turns=(Turn(role="user", text="Describe the image in 2-3 concise sentences."),),
            image_path=str(root / "q.png"),
            sampling=Sampling(max_tokens=a.max_tokens),
        )
        payload = {
            "model": "tiny",
            "messages": to_openai_messages(req),
            "max_tokens": a.max_tokens,
            "temperature": 0.0,
            "top_p": 1.0,
            "seed": 0,
        }
        one_token = req.model_copy(update={"sampling": Sampling(max_tokens=1)})
        result: dict = {}
        if not a.overhead_only:
            with launch_server(model, served_name="tiny") as url:
                asyncio.run(_direct(url, payload, 8, 4))  # warm-up
                direct = asyncio.run(_direct(url, payload, a.requests, a.concurrency))
                client = asyncio.run(_client(url, req, a.requests, a.concurrency))
                result |= {
                    "concurrency": a.concurrency,
                    "requests": a.requests,
                    "max_tokens": a.max_tokens,
                    "direct_req_per_s": round(direct, 2),
                    "client_req_per_s": round(client, 2),
                    "client_over_direct": round(client / direct, 3),
                }
                result |= _overhead_repeats(url, one_token, max(10, a.overhead_requests // 20), a.repeats,
                                            "model_server_")
                result |= _cached_rerun(url, root, a.cached_requests)
        proc, canned = _canned_server()
        try:
            result |= _overhead_repeats(canned, one_token, a.overhead_requests, a.repeats, "")
            result |= _lifecycle(canned, one_token, max(20, a.overhead_requests // 10))
        finally:
            proc.terminate()
            proc.wait(10)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
