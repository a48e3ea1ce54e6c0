"""Generation core without a server: prompts, planning, validation, cache crash-safety, LLaVA export."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from tinyemo_core.generate import prompts as P
from tinyemo_core.generate.backends.base import Answer, ChatRequest, Sampling, Turn
from tinyemo_core.generate.cache import GenerationCache, request_key
from tinyemo_core.generate.chains import load_manifest, plan, render
from tinyemo_core.generate.export import LlavaRecord, export_all, load_external
from tinyemo_core.generate.runner import ChainResult
from tinyemo_core.generate.spec import GenerationSpec, ValidationSpec
from tinyemo_core.generate.validate import validate_answer


def _manifest(tmp: Path, n: int = 4) -> Path:
    labels = ["joy", "fear", "anger", "awe"]
    rows = [
        dict(
            image_id=f"img{i}",
            path=f"d/{i}.png",
            split="train" if i < n - 1 else "test",
            label=labels[i % 4],
            labels=[labels[i % 4]],
            taxonomy="demo",
            dataset="demo",
            status="ok",
            error=None,
            attributes=json.dumps({"brightness": 0.3, "object": ["Tree"]}),
        )
        for i in range(n)
    ]
    rows.append(dict(rows[0], image_id="broken", status="error", error="decode failed"))
    pq.write_table(pa.Table.from_pylist(rows), tmp / "m.parquet")
    return tmp / "m.parquet"


def test_prompts_are_the_papers() -> None:
    assert P.CAPTION_PROMPT.startswith("<image>Describe the image in 2-3 concise sentences.")
    assert "<sentiment>" in P.SENTIMENT_QUESTION_PROMPT and "<sentiment>" in P.SENTIMENT_ANSWER_PROMPT
    cond = P.emoreason_instruction(["joy", "fear"], "fear")
    assert "Labels: [joy, fear]" in cond and cond.endswith("Important: note that the correct label is fear.")
    assert "Important" not in P.emoreason_instruction(["joy", "fear"])
    assert P.emoreason_answer(" it glows ", "joy") == "Reasoning: it glows\nPredicted Label: joy"
    q, a = P.emovit_categorical(["amusement", "anger", "awe"], "awe")
    assert q.endswith("options: amusement, anger and awe.") and a == "Predict emotion: awe."


def test_manifest_and_plan(tmp_path: Path) -> None:
    spec = GenerationSpec(model="m", seed=3)
    rows = load_manifest([_manifest(tmp_path)], spec, image_root=tmp_path)
    assert [r.image_id for r in rows] == ["img0", "img1", "img2"]  # status != ok and split test excluded
    assert rows[0].path == str(tmp_path / "d/0.png") and rows[0].attributes["brightness"] == 0.3
    chains = plan(rows, spec)
    assert len(chains) == 9 and sum(len(c.steps) for c in chains) == 15
    orders = [tuple(c.task for c in chains[i : i + 3]) for i in range(0, 9, 3)]
    assert all(sorted(o) == ["caption", "sentiment", "visual"] for o in orders)
    assert [c.task for c in plan(rows, spec)] == [c.task for c in chains]  # seeded
    assert any(
        [c.task for c in plan(rows, spec.model_copy(update={"seed": s}))] != [c.task for c in chains]
        for s in range(4, 10)
    )
    sent = next(c for c in chains if c.task == "sentiment" and c.row.label == "joy")
    answer_req = render(sent, 1, ["How does it feel?"], spec)
    assert [t.role for t in answer_req.turns] == ["user", "assistant", "user"]
    assert (
        answer_req.turns[1].text == "How does it feel?"
        and "label of the image: joy." in answer_req.turns[2].text
    )
    emovit = plan(rows, spec.model_copy(update={"mode": "emovit"}))[0]
    conv = render(emovit, 1, ["A red tree."], spec)
    assert conv.image_path is None and conv.turns[1].text.startswith("A red tree.\n\nemotion: joy\n")
    assert "brightness: 0.3" in conv.turns[1].text and conv.turns[0].role == "system"  # authors' format


@pytest.mark.parametrize(
    ("kind", "text", "finish", "reason"),
    [
        ("caption", "   ", "stop", "empty"),
        ("caption", "A dog on a beach", "length", "truncated"),
        ("caption", "I'm sorry, I cannot help with that.", "stop", "refusal"),
        ("visual_question", "The sky is blue.", "stop", "format"),
        ("emovit_reasoning", "No pairs here.", "stop", "format"),
        ("emoreason", "It is sunny. Label: joy", "stop", "format"),
        ("visual_question", "What color is the car?", "stop", None),
        (
            "emovit_conversation",
            "Question: a? Answer: b. Question: c? Answer: d. Question: e? Answer: f.",
            "stop",
            None,
        ),
        ("emoreason", "Reasoning: bright colours.\nPredicted Label: joy", "stop", None),
    ],
)
def test_validation_reasons(kind: str, text: str, finish: str, reason: str | None) -> None:
    verdict = validate_answer(
        kind, Answer(text=text, finish_reason=finish, completion_tokens=5), ValidationSpec()
    )
    assert (verdict[0] if verdict else None) == reason


def test_cache_key_and_crash_safety(tmp_path: Path) -> None:
    req = ChatRequest(turns=(Turn(role="user", text="hi"),), image_path="/x.png", sampling=Sampling(seed=1))
    k = request_key("fp", "img", req)
    assert k != request_key("fp2", "img", req) and k != request_key("fp", "img2", req)
    assert k != request_key("fp", "img", req.model_copy(update={"sampling": Sampling(seed=2)}))
    assert k == request_key("fp", "img", req.model_copy(update={"image_path": "/elsewhere.png"}))
    with GenerationCache(tmp_path) as c:
        c.put("a", {"status": "ok", "text": "one"})
        c.put("b", {"status": "ok", "text": "two"})
    shard = next(tmp_path.glob("part-*.jsonl"))
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) - 7])  # a kill mid-write leaves a partial last line
    c = GenerationCache(tmp_path)
    assert set(c.records) == {"a"} and c.corrupt_lines == 1
    flipped = data.replace(b'"one"', b'"0ne"')  # a complete line whose content changed fails its checksum
    shard.write_bytes(flipped)
    assert set(GenerationCache(tmp_path).records) == {"b"}
    shard.write_bytes(data)
    c = GenerationCache(tmp_path)
    c.put("a", {"status": "ok", "text": "newer"})
    c.close()
    c = GenerationCache(tmp_path)
    assert c.get("a")["text"] == "newer" and len(c) == 2 and len(c.shards()) == 2
    c.compact()
    assert len(c.shards()) == 1 and GenerationCache(tmp_path).get("a")["text"] == "newer"


def test_llava_schema_rejects_bad_records() -> None:
    good = {
        "id": "x",
        "image": "a/b.jpg",
        "conversations": [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "A"}],
    }
    LlavaRecord.model_validate(good)
    bad = [
        {**good, "image": "/abs/b.jpg"},
        {**good, "image": "../b.jpg"},
        {**good, "conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]},
        {**good, "conversations": [{"from": "gpt", "value": "<image>\nQ"}, {"from": "human", "value": "A"}]},
        {**good, "conversations": good["conversations"][:1]},
        {**good, "conversations": [good["conversations"][0], {"from": "gpt", "value": "<image>"}]},
        {**good, "extra": 1},
    ]
    for rec in bad:
        with pytest.raises(ValidationError):
            LlavaRecord.model_validate(rec)


def test_export_from_results_with_external_merge(tmp_path: Path) -> None:
    spec = GenerationSpec(model="m")
    rows = load_manifest(
        [_manifest(tmp_path, 5)], spec.model_copy(update={"splits": ["train", "test"]}), image_root=tmp_path
    )
    chains = plan(rows, spec)
    texts = {
        "caption": ["A cat."],
        "visual": ["What is it?", "A cat."],
        "sentiment": ["How do you feel?", "Calm."],
    }
    results = [ChainResult(c, texts[c.task], "ok") for c in chains]
    results[0] = ChainResult(chains[0], [], "failed", "truncated")
    hq = tmp_path / "hq.json"
    hq.write_text(
        json.dumps(
            [
                {
                    "id": "hq-1",
                    "image": "d/9.png",
                    "conversations": [
                        {"from": "human", "value": "<image>\nWhy?"},
                        {"from": "gpt", "value": "Reasoning: x\nPredicted Label: awe"},
                    ],
                }
            ]
        )
    )
    labels = {"demo": ["anger", "awe", "fear", "joy"]}
    summary = export_all(results, tmp_path / "out", tmp_path, labels, external=hq)
    assert summary["left_out"] == {"failed:truncated": 1}
    pre = summary["stats"]["pretrain"]
    assert pre["train"]["records"] + pre["test"]["records"] == 14
    emo = json.loads((tmp_path / "out/emoreason_train.json").read_text())
    assert emo[-1]["id"] == "hq-1"
    assert summary["stats"]["emoreason"]["train"]["labels"]["awe"] == 2  # img3 + hq-1
    assert emo[0]["conversations"][1]["value"].startswith("Reasoning: Calm.\nPredicted Label: ")
    assert all(r["image"].startswith("d/") for r in emo)
    hq.write_text(
        json.dumps(
            [
                {
                    "id": "hq-2",
                    "image": "d/9.png",
                    "conversations": [
                        {"from": "human", "value": "<image>\nWhy?"},
                        {"from": "gpt", "value": "Because."},
                    ],
                }
            ]
        )
    )
    with pytest.raises(ValueError, match="EmoReason format"):
        load_external(hq)
    with pytest.raises(ValueError, match="outside the image root"):
        export_all(results, tmp_path / "out2", tmp_path / "d" / "nested", labels)


def test_spec_names_bad_fields() -> None:
    with pytest.raises(ValidationError, match="max_concurrency"):
        GenerationSpec(model="m", max_concurrency=0)
    with pytest.raises(ValidationError, match="backend"):
        GenerationSpec(model="m", backend="vllm")
    with pytest.raises(ValidationError, match="unknown_field"):
        GenerationSpec(model="m", unknown_field=1)


def test_emovit_export(tmp_path: Path) -> None:
    spec = GenerationSpec(model="m", mode="emovit")
    rows = load_manifest([_manifest(tmp_path)], spec, image_root=tmp_path)
    conv = (
        "Question: What is there? Answer: A tree.\n"
        "Question: Is it dark? Answer: Yes.\nQuestion: Why? Answer: Dusk."
    )
    answers = {"emovit_conversation": conv, "emovit_reasoning": "Question: Why sad? Answer: It is alone."}
    results = [ChainResult(c, ["A tree.", answers[c.steps[-1].kind]], "ok") for c in plan(rows, spec)]
    summary = export_all(
        results, tmp_path / "out", tmp_path, {"demo": ["anger", "fear", "joy"]}, mode="emovit"
    )
    recs = json.loads((tmp_path / "out/emovit_train.json").read_text())
    assert summary["stats"]["emovit"]["train"]["records"] == 9
    kinds = {r["id"].rsplit("-", 1)[1]: r for r in recs[:3]}
    assert kinds["categorical"]["conversations"][1]["value"] == "Predict emotion: joy."
    assert len(kinds["conversation"]["conversations"]) == 6
    assert kinds["reasoning"]["conversations"][0]["value"] == "<image>\nWhy sad?"
