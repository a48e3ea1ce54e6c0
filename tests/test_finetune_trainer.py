"""The shared trainer on a tiny LLaVA: only the recipe's trainable parameters change; LoRA stays put."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tinyemo_core.finetune.data import load_export
from tinyemo_core.finetune.recipes import RECIPES, get_recipe
from tinyemo_core.finetune.spec import LoraSpec, ModelSpec, TinyModelSpec, TrainArgs
from tinyemo_core.finetune.tiny import tiny_exports
from tinyemo_core.finetune.trainer import latest_checkpoint, train_model, training_complete

TINY = ModelSpec(tiny=TinyModelSpec())


def _setup(tmp_path: Path, recipe: str, export: str):
    r = get_recipe(recipe)
    model, proc = r.build(TINY)
    paths = tiny_exports(tmp_path / "data", 6)
    ds = r.dataset(load_export(paths[export]), proc, tmp_path / "data", "finetune")
    return r, model, proc, ds


def _changed(before: dict, model) -> set[str]:
    return {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}


def test_pretrain_updates_only_the_connector(tmp_path: Path) -> None:
    r, model, proc, ds = _setup(tmp_path, "tinyemo", "pretrain_train")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen: list[dict] = []
    res = train_model(
        model,
        ds,
        r.collator(proc),
        TrainArgs(learning_rate=1e-3, max_steps=3, save_steps=2, per_device_train_batch_size=2),
        tmp_path / "out",
        trainable=r.trainable("pretrain"),
        processor=proc,
        on_progress=seen.append,
    )
    changed = _changed(before, model)
    connector = {k for k in before if ".multi_modal_projector." in k}
    assert changed == connector  # every connector tensor moved, no LLM or ViT tensor did
    assert res["steps"] == 3 and res["trainable_parameters"] == sum(before[k].numel() for k in connector)
    assert [s["step"] for s in seen] == [1, 2, 3] and all(s["tokens_per_s"] > 0 for s in seen)
    assert {"step", "max_steps", "loss", "tokens_per_s", "eta_s", "memory"} <= set(seen[0])
    assert training_complete(tmp_path / "out") and (tmp_path / "out" / "loss_curve.png").stat().st_size > 0
    assert latest_checkpoint(tmp_path / "out") is not None
    # a finished run is returned, not retrained
    assert (
        train_model(
            model,
            ds,
            r.collator(proc),
            TrainArgs(learning_rate=1e-3, max_steps=3),
            tmp_path / "out",
            trainable=r.trainable("pretrain"),
        )
        == res
    )


def test_llava_emotic_lora_changes_only_adapters_and_connector(tmp_path: Path) -> None:
    r, model, proc, ds = _setup(tmp_path, "llava-emotic", "emoreason_train")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    args = TrainArgs(
        learning_rate=5e-3,
        max_steps=3,
        per_device_train_batch_size=2,
        lora=LoraSpec(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"]),
    )
    res = train_model(
        model, ds, r.collator(proc), args, tmp_path / "out", trainable=r.trainable("finetune"), processor=proc
    )
    assert res["lora"] and res["trainable_parameters"] < sum(v.numel() for v in before.values()) // 20
    from transformers import LlavaForConditionalGeneration

    merged = LlavaForConditionalGeneration.from_pretrained(tmp_path / "out" / "model")
    after = merged.state_dict()
    assert set(after) == set(before)  # merged back into the plain LLaVA layout
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "LoRA training changed nothing"
    for k in changed:
        assert ".multi_modal_projector." in k or k.endswith(("q_proj.weight", "v_proj.weight")), k
    assert any(".multi_modal_projector." in k for k in changed)
    assert any("q_proj" in k for k in changed) and not any("vision_tower" in k for k in changed)


def test_registry_and_bad_arguments(tmp_path: Path) -> None:
    assert {"tinyemo", "llava-emotic", "emovit"} <= set(RECIPES)
    with pytest.raises(KeyError, match="unknown fine-tuning recipe 'nope'"):
        get_recipe("nope")
    r, model, proc, ds = _setup(tmp_path, "tinyemo", "pretrain_train")
    with pytest.raises(ValueError, match="no parameter is trainable"):
        train_model(
            model,
            ds,
            r.collator(proc),
            TrainArgs(learning_rate=1e-3, max_steps=1),
            tmp_path / "o",
            trainable=lambda name: False,
        )
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="QLoRA"):
            train_model(
                model,
                ds,
                r.collator(proc),
                TrainArgs(learning_rate=1e-3, max_steps=1, lora=LoraSpec(quantize_4bit=True)),
                tmp_path / "o",
                trainable=r.trainable("finetune"),
            )
