"""The served route end to end against TWO real OpenAI-compatible servers on loopback: the project's own
serve-generator (FastAPI/uvicorn, HTTP/1.1 keep-alive) and an aiohttp server that omits ``usage``, adds
unknown fields and serves a model id containing ``/``. Every command that can use a served model
(generate-qa, evaluate-generated with CLIPScore, reason with a served reasoner) runs through it, then again
warm: the rerun sends no chat completion. A run fed every hostile response kind completes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx
import pytest
from data_fixtures import write_flat_manifest
from openai_servers import HOSTILE, TIMEOUT_S, AiohttpOpenAI, serve_generator_thread

from tinyemo_core.generate.validate import SPECIAL_TOKENS

pytestmark = pytest.mark.slow

RELAXED = {"reject_truncated": False, "require_question_mark": False}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory):
    from conftest import write_small_config

    from tinyemo_core.generate.tiny_model import build_tiny_vlm

    root = tmp_path_factory.mktemp("served")
    (root / "eval").mkdir()
    model = build_tiny_vlm(root / "model", seed=0)
    write_flat_manifest(root, ["joy", "fear"], size=(40, 30))
    other = AiohttpOpenAI()
    with serve_generator_thread(model, "tiny") as (url, count):
        yield {
            "root": root,
            "eval_config": write_small_config(root / "eval"),  # one demo store for both servers' evaluations
            "serve-generator": {"url": url, "model": "tiny", "count": count},
            "aiohttp": {"url": other.url, "model": other.model_id, "count": lambda: other.chat_completions},
        }
    other.close()


SERVERS = ["serve-generator", "aiohttp"]


@pytest.mark.parametrize("server", SERVERS)
def test_generate_qa_flow_then_warm_rerun_sends_nothing(servers, server, prefect_harness, tmp_path) -> None:
    from pipelines.flows.generate_qa import generate_qa

    s = servers[server]
    spec = {"backend": "openai", "base_url": s["url"], "model": s["model"], "temperature": 0.0,
            "max_tokens": 8, "max_concurrency": 4, "validation": RELAXED, "max_retries": 1,
            "backoff_base_s": 0.01}
    args = dict(manifests=[str(servers["root"] / "manifest.parquet")], spec=spec,
                out_dir=str(tmp_path / "out"), image_root=str(servers["root"]),
                store_root=str(tmp_path / "gen"))
    before = s["count"]()
    out = generate_qa(**args)
    report = out["report"]
    assert report["sent"] == report["total"] == s["count"]() - before > 0
    assert not set(report["failed"]) - {"format", "empty"}  # random weights may miss the EmoReason format
    if server == "aiohttp":
        assert report["failed_total"] == 0 and report["completion_tokens"] == 0  # no usage: zero, no error
        assert out["export"]["stats"]["emoreason"]["train"]["records"] == 2
    for f in (tmp_path / "out").glob("*.json"):
        json.loads(f.read_text())
    warm = generate_qa(**args)["report"]
    assert (warm["sent"], warm["cached"], s["count"]() - before) == (0, report["total"], report["sent"])


@pytest.mark.parametrize("server", SERVERS)
def test_evaluate_generated_with_clipscore_then_warm(servers, server, prefect_harness, tmp_path) -> None:
    from pipelines.flows.evaluate_generated import evaluate_generated

    s = servers[server]
    config = servers["eval_config"]
    overrides = [f"evaluate_generated.base_url={s['url']}", "evaluate_generated.max_images=2",
                 "evaluate_generated.max_tokens=8", "evaluate_generated.datasets=[demo_emoset]"]
    before = s["count"]()
    first = evaluate_generated(config=str(config), profile="demo", overrides=overrides, model=s["model"])
    report = json.loads((Path(first["report_dir"]) / "report.json").read_text())
    assert first["computed"] and "clipscore" in report["summary"]  # CLIPScore captions used a live client
    sent = s["count"]() - before
    assert sent == 2 * 2 + 2  # two instructions x 2 images, then 2 captions
    assert report["summary"]["clipscore"]["datasets"]["demo_emoset"]["n"] == 2
    again = evaluate_generated(config=str(config), profile="demo", overrides=overrides, model=s["model"])
    assert not again["computed"] and again["report_dir"] == first["report_dir"]
    assert s["count"]() - before == sent  # warm: only the model-list probe, no chat completion


@pytest.mark.parametrize("server", SERVERS)
def test_reason_with_served_reasoner_then_warm(servers, server, tmp_path) -> None:
    from tinyemo_core.finetune.spec import ReasonSpec
    from tinyemo_core.stages import reason as R

    s = servers[server]
    root = servers["root"]
    items = [R.ReasonItem(f"{i}.png", str(root / f"{i}.png"), ("joy", "fear", "sadness", "awe"), "fear", 0.9)
             for i in range(2)]
    spec = ReasonSpec(backend="openai", base_url=s["url"], served_model=s["model"], batch_size=2,
                      max_new_tokens=8, compare_images=1)
    before = s["count"]()
    desc = R.reason_items(items, None, spec, tmp_path / "storage")
    assert not desc["cached"] and s["count"]() - before >= 2
    import pyarrow.parquet as pq

    rows = pq.read_table(Path(desc["path"]) / "reasoning.parquet").to_pylist()
    assert len([r for r in rows if r["conditioned"]]) == 2
    if server == "aiohttp":
        assert all(r["predicted_label"] == "fear" and r["agree"] for r in rows if r["conditioned"])
    sent = s["count"]() - before
    again = R.reason_items(items, None, spec, tmp_path / "storage")
    assert again["cached"] and s["count"]() - before == sent


def test_serve_generator_refuses_stream_and_n(servers) -> None:
    s = servers["serve-generator"]
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    with httpx.Client(base_url=s["url"]) as client:
        assert client.post("/chat/completions", json=body).status_code == 200
        for extra, word in (({"stream": True}, "stream"), ({"n": 2}, "n=2")):
            r = client.post("/chat/completions", json=body | extra)
            assert r.status_code == 400 and word in r.json()["error"]["message"]


def test_every_hostile_kind_costs_one_request_never_the_run(tmp_path: Path) -> None:
    from tinyemo_core.generate.backends.openai_http import OpenAIHTTPGenerator
    from tinyemo_core.generate.chains import label_lists, load_manifest, plan
    from tinyemo_core.generate.export import export_all
    from tinyemo_core.generate.runner import collect, run_generation
    from tinyemo_core.generate.spec import GenerationSpec

    kinds = list(HOSTILE)
    server = AiohttpOpenAI("org/hostile", hostile=kinds)
    try:
        write_flat_manifest(tmp_path, ["joy", "fear", "sadness"] * 5, size=(24, 24))
        spec = GenerationSpec(model="org/hostile", base_url=server.url, temperature=0.0, max_tokens=24,
                              max_concurrency=1, validation=RELAXED, max_retries=1, backoff_base_s=0.01,
                              timeout_s=TIMEOUT_S)
        rows = load_manifest([tmp_path / "manifest.parquet"], spec, image_root=tmp_path)
        chains = plan(rows, spec)
        report = run_generation(chains, OpenAIHTTPGenerator.from_spec(spec), spec, tmp_path / "store")
        assigned = server.assigned()
        assert sorted(k for k in assigned.values() if k != "ok") == sorted(kinds)  # every kind was served
        want = Counter(reason for _, reason in HOSTILE.values() if reason)
        assert report.failed == want  # only the permanent kinds fail, each with its reason
        transient = sum(t for t, _ in HOSTILE.values())
        assert server.chat_completions == report.sent + transient + 1  # +1: bad shape retried once
        # a rerun re-sends exactly the exchange failures (docs/generation.md): the 400 and the bad shape
        posts = server.chat_completions
        again = run_generation(chains, OpenAIHTTPGenerator.from_spec(spec), spec, tmp_path / "store")
        assert again.sent == 2 and again.failed == want and server.chat_completions - posts == 1 + 2
        results = collect(chains, spec, tmp_path / "store" / report.generator_dir, report.fingerprint)
        summary = export_all(results, tmp_path / "out", tmp_path, label_lists(rows, spec), conditional=True)
        ok_chains = sum(r.status == "ok" for r in results)
        assert ok_chains == len(chains) - sum(want.values())  # one permanent failure ends one chain
        pretrain = sum(split["records"] for split in summary["stats"]["pretrain"].values())
        assert pretrain == ok_chains  # one record per answered chain, none for a failed one
        assert sum(summary["left_out"].values()) == sum(want.values())
        for f in (tmp_path / "out").glob("*.json"):
            text = f.read_text()
            json.loads(text)
            assert not any(t in text for t in SPECIAL_TOKENS) and " more more" not in text
    finally:
        server.close()


def test_likelihood_map_with_a_served_model_is_refused_up_front() -> None:
    from tinyemo_core.generate.backends.openai_http import OpenAIHTTPGenerator
    from tinyemo_core.judge.spec import EvaluateGeneratedSpec
    from tinyemo_core.stages.evaluate_generated import _refuse_served_likelihood

    served = OpenAIHTTPGenerator("http://127.0.0.1:9/v1", "org/llava")
    explicit = EvaluateGeneratedSpec(recipe="llava-emotic", model="org/llava", likelihood_map=True)
    with pytest.raises(ValueError, match="likelihood_map needs the model in process"):
        _refuse_served_likelihood(explicit, served)
    _refuse_served_likelihood(EvaluateGeneratedSpec(recipe="llava-emotic", model="org/llava"), served)
