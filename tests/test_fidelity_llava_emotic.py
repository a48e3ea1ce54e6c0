"""LLaVA on EMOTIC as the poster trains and judges it: one prompt format for training, generation and
likelihood scoring; square padding (a red box at an edge survives); the targets' own answer prefix; a model
after every epoch (the poster's best epoch is the sixth)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tinyemo_core.config import load_config
from tinyemo_core.finetune.spec import ModelSpec, TinyModelSpec, TrainArgs

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows.yaml"


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """The llava-emotic recipe's tiny model and processor, saved and reloaded as the judge loads them."""
    from tinyemo_core.finetune.recipes import get_recipe

    tiny = ModelSpec(tiny=TinyModelSpec(hidden=16, vision_hidden=16))
    model, processor = get_recipe("llava-emotic").build(tiny)
    out = tmp_path_factory.mktemp("llava-emotic") / "model"
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _edge_red(size=(96, 24)) -> Image.Image:
    img = Image.new("RGB", size, (0, 0, 0))
    img.paste((255, 0, 0), (0, 0, 8, size[1]))  # a red box edge at the very left
    return img


def test_square_padding_keeps_a_red_box_at_the_edge(saved: Path) -> None:
    from transformers import AutoProcessor, CLIPImageProcessor

    processor = AutoProcessor.from_pretrained(saved)
    assert getattr(processor.image_processor, "do_pad", False)  # LLaVA-1.5 image_aspect_ratio: pad
    red = processor.image_processor(images=_edge_red(), return_tensors="pt")["pixel_values"][0, 0]
    settings = {k: v for k, v in processor.image_processor.to_dict().items()
                if k not in ("image_processor_type", "processor_class", "do_pad")}
    cropped = CLIPImageProcessor(**settings)(images=_edge_red(), return_tensors="pt")["pixel_values"][0, 0]
    assert float(red.max()) > 1.5 and float(cropped.max()) < 0  # centre crop cut the box off


def test_training_generation_and_likelihood_share_one_prompt(saved: Path) -> None:
    from tinyemo_core.data.emotic_persons import PERSON_PROMPT
    from tinyemo_core.finetune.data import encode_conversation, encode_prompt
    from tinyemo_core.finetune.model import SYSTEM, image_token_count
    from tinyemo_core.generate.backends.base import Turn
    from tinyemo_core.generate.backends.transformers_local import TransformersGenerator
    from tinyemo_core.judge.likelihood import answer_tokens, prompt_inputs

    gen = TransformersGenerator(saved, device="cpu", dtype="float32")
    tok, n = gen.processor.tokenizer, image_token_count(gen.processor)
    question = PERSON_PROMPT.replace("{labels}", "happiness, peace")
    trained = encode_prompt(tok, "<image>\n" + question, n)  # the trainer's prompt ids
    generated = gen._inputs((Turn(role="user", text=question),), _edge_red())["input_ids"][0].tolist()
    scored = prompt_inputs(gen.processor, question, _edge_red())["input_ids"][0].tolist()
    assert trained == generated == scored
    assert tok.decode(trained, skip_special_tokens=True).startswith(SYSTEM)  # the v1 system text, everywhere

    # likelihood: prefix + category tokens are the first tokens of the training target
    cfg = load_config(FLOWS, "paper-llava-emotic")
    prefix = cfg.spec.evaluate_generated.answer_prefix
    from tinyemo_core.generate.emotic_export import answer

    target = answer(["happiness", "peace"], None, "emotions")
    assert prefix == "Emotions: " and target.startswith(prefix)
    ids, labels = encode_conversation(tok, ["<image>\n" + question, target], n)
    answer_ids = [t for t, lab in zip(ids, labels, strict=True) if lab != -100]
    head, cats = answer_tokens(tok, ["happiness"], prefix)
    assert answer_ids[: len(head) + len(cats[0])] == head + cats[0]


def test_a_model_after_every_epoch(tmp_path: Path) -> None:
    from tinyemo_core.finetune.recipes import get_recipe
    from tinyemo_core.finetune.tiny import tiny_exports
    from tinyemo_core.finetune.trainer import train_model
    from tinyemo_core.store.finetune import epoch_models

    cfg = load_config(FLOWS, "paper-llava-emotic")
    stage = cfg.spec.reasoning.finetune.train
    assert stage.num_train_epochs == 6 and stage.save_epoch_models  # the poster: best at epoch 6
    recipe = get_recipe("llava-emotic")
    model, processor = recipe.build(ModelSpec(tiny=TinyModelSpec(hidden=16, vision_hidden=16)))
    records = json.loads(tiny_exports(tmp_path, 4)["emoreason_train"].read_text())
    args = TrainArgs(learning_rate=1e-3, num_train_epochs=2, per_device_train_batch_size=4, save_steps=100,
                     save_epoch_models=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train_model(model, recipe.dataset(records, processor, tmp_path, "finetune"),
                             recipe.collator(processor), args, tmp_path / "stage",
                             trainable=recipe.trainable("finetune"), processor=processor)
    finally:
        torch.set_num_threads(threads)
    saved = epoch_models(tmp_path / "stage")
    assert [p.name for p in saved] == ["epoch-1", "epoch-2"]
    assert result["epoch_models"] == [str(p) for p in saved]
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    first = LlavaForConditionalGeneration.from_pretrained(saved[0])
    last = LlavaForConditionalGeneration.from_pretrained(tmp_path / "stage" / "model")
    w = "model.multi_modal_projector.linear_1.weight"
    assert not np.allclose(first.state_dict()[w].numpy(), last.state_dict()[w].numpy())  # epoch 1 != final
    assert AutoProcessor.from_pretrained(saved[0]).chat_template == processor.chat_template
