"""Both reasoning stages through the stage functions (tiny LLaVA): overfit, cache, plain reload, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tinyemo_core.data.images import load_rgb
from tinyemo_core.finetune.data import LlavaDataset, load_export
from tinyemo_core.finetune.infer import generate
from tinyemo_core.finetune.model import build_tiny
from tinyemo_core.finetune.recipes import get_recipe
from tinyemo_core.finetune.spec import ModelSpec, ReasoningSpec, StageSpec, TinyModelSpec, TrainArgs
from tinyemo_core.finetune.tiny import tiny_exports
from tinyemo_core.judge.parse import answer_field, parse_label
from tinyemo_core.stages.finetune import plan_stage, run_finetune


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add contention
    yield
    torch.set_num_threads(before)


def _spec(steps: int = 100) -> ReasoningSpec:
    return ReasoningSpec(
        model=ModelSpec(tiny=TinyModelSpec(hidden=64)),
        pretrain=StageSpec(
            export="pretrain_train",
            train=TrainArgs(learning_rate=1e-2, max_steps=4, per_device_train_batch_size=4),
        ),
        finetune=StageSpec(
            export="emoreason_train",
            train=TrainArgs(
                learning_rate=3e-3,
                max_steps=steps,
                per_device_train_batch_size=4,
                save_steps=steps,
                lr_scheduler_type="constant",
                warmup_ratio=0.0,
            ),
        ),
    )


RELOAD = textwrap.dedent("""
    import sys, json
    from PIL import Image
    from transformers import AutoProcessor, LlavaForConditionalGeneration
    model = LlavaForConditionalGeneration.from_pretrained(sys.argv[1]).eval()
    proc = AutoProcessor.from_pretrained(sys.argv[1])
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How does it feel?"}]}]
    text = proc.apply_chat_template(msgs, add_generation_prompt=True)
    inputs = proc(images=Image.open(sys.argv[2]).convert("RGB"), text=text, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    print(json.dumps({"new": int(out.shape[1] - inputs["input_ids"].shape[1]),
                      "tinyemo": any(m.startswith("tinyemo") for m in sys.modules)}))
""")


def test_two_stages_overfit_cache_and_plain_reload(tmp_path: Path) -> None:
    data = tmp_path / "data"
    paths = tiny_exports(data, 4)
    spec = _spec()
    res = run_finetune(tmp_path / "storage", spec, data, data)
    fin = res["stages"]["finetune"]
    losses = [x["loss"] for x in json.loads((Path(fin["path"]) / "train_result.json").read_text())["losses"]]
    assert losses[-1] < losses[0] / 5, losses
    # stage 2's folder is the one its plan names, under the recipe; its fingerprint covers stage 1's
    store = tmp_path / "storage"
    pre = res["stages"]["pretrain"]
    assert Path(fin["path"]) == plan_stage(store, spec, data, "finetune").path
    assert Path(fin["path"]).parent == Path(pre["path"]).parent == store / "finetune" / "tinyemo"
    assert Path(res["model"]) == Path(fin["model"]) and Path(res["model"]).parent == Path(fin["path"])
    assert fin["fingerprint"] != pre["fingerprint"] and fin["computed"] and pre["computed"]
    # what each stage trained: the connector in both, the vision tower never (equal to the fresh build)
    recipe = get_recipe("tinyemo")
    model, proc = recipe.load(Path(res["model"]))
    final = dict(model.named_parameters())
    stage1 = dict(recipe.load(Path(pre["model"]))[0].named_parameters())
    fresh = dict(recipe.build(spec.model)[0].named_parameters())
    tower = next(n for n in final if n.endswith("vision_tower.encoder.layers.0.mlp.fc1.weight"))
    assert torch.equal(final[tower], fresh[tower]) and torch.equal(stage1[tower], fresh[tower])
    connector = next(n for n in final if n.endswith("multi_modal_projector.linear_1.weight"))
    assert not torch.equal(stage1[connector], fresh[connector])  # stage 1 trained it
    assert not torch.equal(final[connector], stage1[connector])  # and stage 2 again
    # the overfit model reproduces its targets' "Predicted Label" (conditional prompts, greedy)
    recs = load_export(paths["emoreason_train"])
    outs = generate(
        model,
        proc,
        [load_rgb(data / r["image"]) for r in recs],
        [r["conversations"][0]["value"].removeprefix("<image>\n") for r in recs],
        max_new_tokens=40,
    )
    labels = ["joy", "sadness", "fear", "anger"]
    for rec, out in zip(recs, outs, strict=True):
        target = parse_label(rec["conversations"][1]["value"], labels, recipe="tinyemo").label
        assert answer_field(out, ("Predicted Label:",)) is not None, out
        assert parse_label(out, labels, recipe="tinyemo").label == target, (rec["id"], out)
    # warm rerun trains nothing
    again = run_finetune(tmp_path / "storage", spec, data, data)
    assert not any(s["computed"] for s in again["stages"].values())
    # a changed export changes the fingerprint of both stages (stage 2 depends on stage 1)
    before = plan_stage(tmp_path / "storage", spec, data, "finetune").fingerprint
    paths["pretrain_train"].write_text(paths["pretrain_train"].read_text().replace("tone 0", "tone zero"))
    assert plan_stage(tmp_path / "storage", spec, data, "finetune").fingerprint != before
    # plain transformers, no tinyemo import, loads and generates with the saved chat template
    proc_out = subprocess.run(
        [sys.executable, "-c", RELOAD, res["model"], str(data / recs[0]["image"])],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    got = json.loads(proc_out.stdout.strip().splitlines()[-1])
    assert got["tinyemo"] is False and 1 <= got["new"] <= 8


def test_bad_input_names_the_record(tmp_path: Path) -> None:
    data = tmp_path / "data"
    paths = tiny_exports(data, 2)
    with pytest.raises(FileNotFoundError, match="pretrain_train.json is missing"):
        plan_stage(tmp_path / "s", _spec(), tmp_path / "nowhere", "pretrain")
    _, proc = build_tiny(TinyModelSpec())
    recs = load_export(paths["emoreason_train"])
    (data / recs[1]["image"]).unlink()
    with pytest.raises(FileNotFoundError, match=r"record '0001-emoreason': image .*0001.png not found"):
        LlavaDataset(recs, proc, data)
    empty = [dict(recs[0], conversations=[recs[0]["conversations"][0], {"from": "gpt", "value": "  "}])]
    with pytest.raises(ValueError, match="record '0000-emoreason': assistant turn 1 is empty"):
        LlavaDataset(empty, proc, data)
    proc.tokenizer.pad_token = None
    with pytest.raises(ValueError, match="tokenizer has no pad token"):
        LlavaDataset(recs[:1], proc, data)
    from tinyemo_core.finetune.model import ensure_pad_token

    proc.tokenizer.unk_token = None
    with pytest.raises(ValueError, match="no pad token and no unk token"):
        ensure_pad_token(proc.tokenizer, what="tokenizer of 'x'")
