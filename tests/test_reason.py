"""Conditional reasoning (stages/reason.py): prompts, rows, files, caching, and a real fine-tuned tiny VLM."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from tinyemo_core.finetune.spec import ReasonSpec, TinyModelSpec, TrainArgs
from tinyemo_core.finetune.tiny import LABELS, tiny_exports
from tinyemo_core.generate.backends.base import Answer
from tinyemo_core.stages import reason as R


@pytest.fixture
def one_thread():
    """Tiny models: extra threads only add contention on the shared machine (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _items(root: Path, records: list[dict], *, projector: list[str] | None = None) -> list[R.ReasonItem]:
    out = []
    for i, rec in enumerate(records):
        truth = rec["conversations"][1]["value"].rsplit("Predicted Label: ", 1)[1]
        out.append(R.ReasonItem(rec["id"], str(root / rec["image"]), LABELS,
                                projector[i] if projector else truth, 0.9, truth))
    return out


def test_conditional_prompt_is_the_training_instruction(tmp_path: Path) -> None:
    exports = tiny_exports(tmp_path, 2, conditional=True)
    rec = json.loads(exports["emoreason_train"].read_text())[1]
    item = _items(tmp_path, [rec])[0]
    req = R.reasoning_request(item, condition=True, max_new_tokens=8)
    assert "<image>\n" + req.turns[0].text == rec["conversations"][0]["value"]
    assert req.turns[0].text.endswith(f"Important: note that the correct label is {item.projector_label}.")
    plain = R.reasoning_request(item, condition=False, max_new_tokens=8).turns[0].text
    assert "Important" not in plain and "Labels: [joy, sadness, fear, anger]" in plain
    with pytest.raises(ValueError, match="no projector label"):
        R.reasoning_request(R.ReasonItem("x7", "a.png", LABELS, None), condition=True, max_new_tokens=8)


def test_rows_agreement_files_and_cache(tmp_path: Path) -> None:
    exports = tiny_exports(tmp_path, 3)
    records = json.loads(exports["emoreason_train"].read_text())
    items = _items(tmp_path, records, projector=["joy", "fear", "anger"])  # truths: joy, sadness, fear
    calls: list[int] = []

    def answer(reqs):  # echoes the conditioned label; says "sad" (an alias) without a condition
        calls.append(len(reqs))
        out = []
        for r in reqs:
            text = r.turns[0].text
            lab = text.rsplit("correct label is ", 1)[1].rstrip(".") if "Important" in text else "sad"
            text = f"Reasoning: it looks {lab}.\nPredicted Label: {lab}"
            out.append(Answer(text=text, finish_reason="stop"))
        return out

    spec = ReasonSpec(batch_size=2, compare_images=2)
    out = tmp_path / "out"
    desc = R.write_reasoning(out, items, answer, spec, {"name": "t"})
    rows = pq.read_table(out / "reasoning.parquet").to_pylist()
    assert [r["predicted_label"] for r in rows] == ["joy", "fear", "anger"]
    assert [r["agree"] for r in rows] == [True, True, True]
    assert [r["correct"] for r in rows] == [True, False, False]
    assert calls == [2, 1, 2, 2]  # main rows in batches of 2, then normal + conditional for 2 images
    assert desc["agree_rate"] == 1.0 and desc["accuracy"] == pytest.approx(1 / 3, abs=1e-4)
    comparison = (out / "comparison.md").read_text()
    assert comparison.count("\n| ") == 3 and "it looks sad" in comparison
    assert "| 0001-emoreason | sadness | fear | fear | True |" in (out / "samples.md").read_text()
    assert R.reasoning_complete(out)

    plain = R.generate_reasoning(items, answer, spec, condition=False)
    assert [r["predicted_label"] for r in plain] == ["sadness"] * 3  # alias "sad" parsed as sadness
    assert [r["agree"] for r in plain] == [False, False, False]
    assert [r["correct"] for r in plain] == [False, True, False]


def test_missing_reasoner_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config.json"):
        R.make_reasoner(tmp_path / "nope", ReasonSpec())
    with pytest.raises(ValueError, match="served_model"):
        R.make_reasoner(None, ReasonSpec(backend="openai"))


@pytest.mark.slow
def test_finetuned_tiny_reasoner_follows_the_condition(tmp_path: Path, one_thread: None) -> None:
    """Overfit the real tiny LLaVA through the shared trainer, then reason with the in-process backend."""
    from tinyemo_core.finetune.data import load_export
    from tinyemo_core.finetune.recipes import get_recipe
    from tinyemo_core.finetune.spec import ModelSpec
    from tinyemo_core.finetune.trainer import train_model

    exports = tiny_exports(tmp_path, 4)
    records = load_export(exports["emoreason_train"])
    recipe = get_recipe("tinyemo")
    model, processor = recipe.build(ModelSpec(tiny=TinyModelSpec(hidden=64, seed=1)))
    args = TrainArgs(learning_rate=3e-3, max_steps=100, per_device_train_batch_size=4, warmup_ratio=0.0,
                     lr_scheduler_type="constant", save_steps=1000, logging_steps=10)
    run = tmp_path / "train"
    train_model(model, recipe.dataset(records, processor, tmp_path, "finetune"), recipe.collator(processor),
                args, run, trainable=recipe.trainable("finetune"), processor=processor)
    spec = ReasonSpec(batch_size=3, max_new_tokens=48, compare_images=1)  # BPE tiny vocab: ~30 tokens
    desc = R.reason_items(_items(tmp_path, records), run / "model", spec, tmp_path / "storage")
    rows = pq.read_table(Path(desc["path"]) / "reasoning.parquet").to_pylist()
    assert [r["predicted_label"] for r in rows] == [r["true_label"] for r in rows], rows
    assert all(r["agree"] and r["correct"] and not r["field_missing"] for r in rows)
    one, _ = R.make_reasoner(run / "model", ReasonSpec(batch_size=1))
    single = R.generate_reasoning(_items(tmp_path, records), one, ReasonSpec(batch_size=1, max_new_tokens=48))
    assert [r["reasoning"] for r in single] == [r["reasoning"] for r in rows]  # left-padded batch == 1 by 1
    again = R.reason_items(_items(tmp_path, records), run / "model", spec, tmp_path / "storage")
    assert again["cached"] and again["path"] == desc["path"]
    other = R.reason_items(_items(tmp_path, records), run / "model", ReasonSpec(condition=False, batch_size=3,
                                                                                max_new_tokens=48),
                           tmp_path / "storage")
    assert other["path"] != desc["path"] and not other["cached"]

    from tinyemo_core.generate.server import launch_server  # the same folder over OpenAI-compatible HTTP

    with launch_server(run / "model", served_name="reasoner") as url:
        http = ReasonSpec(backend="openai", base_url=url, served_model="reasoner", batch_size=3,
                          max_new_tokens=48)
        served, _ = R.make_reasoner(None, http)
        over_http = R.generate_reasoning(_items(tmp_path, records), served, http)
    assert [r["reasoning"] for r in over_http] == [r["reasoning"] for r in rows]


def test_image_ids_are_unique_relative_paths(tmp_path: Path) -> None:
    paths = [tmp_path / "happy" / "0008.jpg", tmp_path / "sad" / "0008.jpg"]
    assert R.image_ids(paths) == ["happy/0008.jpg", "sad/0008.jpg"]
    assert R.image_ids(paths[:1]) == ["0008.jpg"]
