"""Run planned chains against a generator: bounded concurrency, per-request cache, progress, resumable."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .backends import Generator, RequestFailed
from .cache import GenerationCache, request_key
from .chains import Chain, render
from .spec import GenerationSpec
from .validate import REQUEST_REASONS, export_blocker, validate_answer

T = TypeVar("T")


@dataclass
class Progress:
    """Snapshot passed to the progress callback (requests, not chains)."""

    done: int
    total: int
    sent: int
    cached: int
    failed: int
    completion_tokens: int
    elapsed_s: float

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class RunReport:
    """What a run did. ``failed`` counts requests whose latest answer failed, by reason (cached too);
    ``blocked`` counts dependent requests not sent because an earlier step of their chain failed."""

    generator_dir: str
    fingerprint: str
    total: int = 0
    sent: int = 0
    cached: int = 0
    blocked: int = 0
    failed: Counter = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["failed"] = dict(self.failed)
        d["failed_total"] = sum(self.failed.values())
        d["tokens_per_s"] = self.completion_tokens / self.wall_s if self.wall_s else 0.0
        return d


def generator_dir(generator: Generator) -> str:
    """Store folder name: readable model name + fingerprint prefix."""
    return f"{generator.name}-{generator.fingerprint[:8]}"


class _Caches(dict):
    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def __missing__(self, dataset: str) -> GenerationCache:
        self[dataset] = GenerationCache(self.root / dataset)
        return self[dataset]

    def close(self) -> None:
        for c in self.values():
            c.close()


async def run_chains(
    chains: Sequence[Chain],
    generator: Generator,
    spec: GenerationSpec,
    store_root: str | Path,
    *,
    progress: Callable[[Progress], None] | None = None,
    progress_every_s: float = 1.0,
) -> RunReport:
    """Run every chain, sending only requests missing from the cache. Health-checks the generator first."""
    await generator.health()
    fp = generator.fingerprint
    report = RunReport(generator_dir(generator), fp, total=sum(len(c.steps) for c in chains))
    caches = _Caches(Path(store_root) / report.generator_dir)
    t0, last = time.perf_counter(), 0.0

    def tick(force: bool = False) -> None:
        nonlocal last
        now = time.perf_counter()
        if progress is not None and (force or now - last >= progress_every_s):
            last = now
            progress(
                Progress(
                    report.sent + report.cached + report.blocked,
                    report.total,
                    report.sent,
                    report.cached,
                    sum(report.failed.values()),
                    report.completion_tokens,
                    now - t0,
                )
            )

    # a request two chains share (EmoVIT: one caption, a chain per data type) is sent once: the later chain
    # waits for the answer in flight instead of asking again
    inflight: dict[str, asyncio.Future] = {}

    async def run_chain(chain: Chain) -> None:
        answers: list[str] = []
        cache = caches[chain.row.dataset]
        for i, step in enumerate(chain.steps):
            req = render(chain, i, answers, spec)
            key = request_key(fp, chain.row.image_id, req)
            rec = cache.get(key)
            retry = (
                rec is not None
                and rec["status"] != "ok"
                and (spec.retry_failed or rec["reason"] in REQUEST_REASONS)
            )
            if (rec is None or retry) and key in inflight:
                rec = await asyncio.shield(inflight[key])
                report.cached += 1
            elif rec is None or retry:
                attempt = rec["attempt"] + 1 if rec else 0
                inflight[key] = asyncio.get_running_loop().create_future()
                try:
                    rec = await _request(generator, req, attempt, step.kind, spec, chain, i)
                    cache.put(key, rec)
                except BaseException as exc:
                    waiting = inflight.pop(key)
                    if isinstance(exc, Exception):
                        waiting.set_exception(exc)
                        waiting.exception()  # retrieved: the chains awaiting it get it raised
                    else:
                        waiting.cancel()
                    raise
                inflight.pop(key).set_result(rec)
                report.sent += 1
                report.prompt_tokens += rec["prompt_tokens"]
                report.completion_tokens += rec["completion_tokens"]
            else:
                report.cached += 1
            if rec["status"] != "ok":
                report.failed[rec["reason"]] += 1
                report.blocked += len(chain.steps) - i - 1
                tick()
                return
            answers.append(rec["text"])
            tick()

    it = iter(chains)

    async def worker() -> None:
        for chain in it:
            await run_chain(chain)

    try:
        await asyncio.gather(*(worker() for _ in range(min(spec.max_concurrency, max(len(chains), 1)))))
    finally:
        caches.close()
        report.wall_s = time.perf_counter() - t0
        tick(force=True)
    return report


async def _request(
    generator: Generator, req, attempt: int, kind: str, spec: GenerationSpec, chain: Chain, step: int
) -> dict[str, Any]:
    """Send one request and turn the outcome (answer or error) into a cache record."""
    if attempt:  # a retried request draws a fresh sample; the cache key stays that of the original request
        req = req.model_copy(
            update={"sampling": req.sampling.model_copy(update={"seed": req.sampling.seed + attempt})}
        )
    rec: dict[str, Any] = {
        "image_id": chain.row.image_id,
        "task": chain.task,
        "step": step,
        "kind": kind,
        "attempt": attempt,
        "created": time.time(),
    }
    try:
        ans = await generator.generate(req)
    except RequestFailed as exc:
        return rec | {
            "status": "failed",
            "reason": exc.reason,
            "detail": str(exc),
            "text": "",
            "finish_reason": "",
            "prompt_tokens": 0,
            "completion_tokens": 0,
        }
    verdict = validate_answer(kind, ans, spec.validation, req.sampling.max_tokens)
    return rec | {
        "status": "ok" if verdict is None else "failed",
        "reason": verdict[0] if verdict else None,
        "detail": verdict[1] if verdict else None,
        **ans.model_dump(),
    }


def run_sync(generator: Generator, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work()`` in a fresh event loop and close the generator's client in that same loop.

    The one way synchronous code talks to a generator: an HTTP client (and its keep-alive connections)
    lives for exactly one loop; the generator reopens a client in the next loop that uses it.
    """

    async def main() -> T:
        try:
            return await work()
        finally:
            await generator.aclose()

    return asyncio.run(main())


def run_generation(
    chains: Sequence[Chain],
    generator: Generator,
    spec: GenerationSpec,
    store_root: str | Path,
    progress: Callable[[Progress], None] | None = None,
) -> RunReport:
    """Synchronous :func:`run_chains` (:func:`run_sync`: its own loop, client closed afterwards)."""
    return run_sync(generator, lambda: run_chains(chains, generator, spec, store_root, progress=progress))


def health_sync(generator: Generator) -> str:
    """Health-check the generator in its own loop (client closed afterwards); return its fingerprint."""
    run_sync(generator, generator.health)
    return generator.fingerprint


@dataclass
class ChainResult:
    chain: Chain
    texts: list[str]
    status: str
    reason: str | None = None


def collect(
    chains: Sequence[Chain], spec: GenerationSpec, generations_dir: str | Path, fingerprint: str
) -> list[ChainResult]:
    """Read every chain's answers back from the cache (no requests); unfinished ones are "missing"."""
    caches = _Caches(Path(generations_dir))
    out = []
    for chain in chains:
        texts: list[str] = []
        status, reason = "ok", None
        for i in range(len(chain.steps)):
            rec = caches[chain.row.dataset].get(
                request_key(fingerprint, chain.row.image_id, render(chain, i, texts, spec))
            )
            if rec is not None and rec["status"] == "ok" and (bad := export_blocker(rec["text"])):
                rec = {**rec, "status": "failed", "reason": bad[0]}  # cached before that check
            if rec is None or rec["status"] != "ok":
                status, reason = ("missing", None) if rec is None else ("failed", rec["reason"])
                break
            texts.append(rec["text"])
        out.append(ChainResult(chain, texts, status, reason))
    return out
