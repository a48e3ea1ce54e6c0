"""Benchmark generation plumbing on a tiny random model served locally (last line: JSON).

1. Client throughput: N concurrent requests through ``OpenAIHTTPGenerator`` vs the same requests sent with raw
   httpx (the server driven directly). Goal: ratio >= 0.9 (the client is never the bottleneck).
2. Cost of a fully cached rerun (plan + key hashing + cache load + lookups), scaled to 10k requests.
3. Client overhead per request in µs: sequential 1-token requests, interleaved, through the client vs raw
   httpx with the same payload (median of the paired latency differences); plus the client's own payload
   build (file read + base64, with and without ``pad_to_square``) timed without the network.
Usage: python bench/generate.py [--concurrency 8] [--requests 64] [--cached-requests 10000]
                                [--overhead-requests 200]
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
from tinyemo_core.generate.runner import generator_dir, run_chains
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
    report = asyncio.run(run_chains(chains, gen, spec, root / "store"))
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
        with launch_server(model, served_name="tiny") as url:
            asyncio.run(_direct(url, payload, 8, 4))  # warm-up
            direct = asyncio.run(_direct(url, payload, a.requests, a.concurrency))
            client = asyncio.run(_client(url, req, a.requests, a.concurrency))
            one_token = req.model_copy(update={"sampling": Sampling(max_tokens=1)})
            overhead = asyncio.run(_overhead(url, one_token, a.overhead_requests))
            cached = _cached_rerun(url, root, a.cached_requests)
    result = {
        "concurrency": a.concurrency,
        "requests": a.requests,
        "max_tokens": a.max_tokens,
        "direct_req_per_s": round(direct, 2),
        "client_req_per_s": round(client, 2),
        "client_over_direct": round(client / direct, 3),
        **overhead,
        **cached,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
