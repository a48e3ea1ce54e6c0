"""EmoVIT recipe: tiny random InstructBLIP offline; only the Q-Former side trains; loss on answers only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tinyemo_core.finetune.recipes import get_recipe
from tinyemo_core.finetune.recipes.emovit import IGNORE, select_kinds
from tinyemo_core.finetune.spec import ModelSpec, TinyModelSpec, TrainArgs
from tinyemo_core.finetune.trainer import train_model
from tinyemo_core.generate import prompts as P
from tinyemo_core.generate.export import _record

LABELS = ["amusement", "anger", "awe", "sadness"]


@pytest.fixture(scope="module")
def built():
    recipe = get_recipe("emovit")
    model, processor = recipe.build(ModelSpec(tiny=TinyModelSpec(hidden=32, layers=1, vision_layers=2)))
    return recipe, model, processor


def _records(root: Path, n: int = 4) -> list[dict]:
    """EmoVIT export records (the shapes ``emovit_records`` writes) over ``n`` seeded images."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        rel = f"img/{i}.png"
        (root / "img").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / rel)
        q, a = P.emovit_categorical(LABELS, LABELS[i % 4])
        out.append(_record(f"im{i}-categorical", rel, [q, a]))
        out.append(_record(f"im{i}-conversation", rel, ["What is shown?", "A pattern of coloured dots.",
                                                        "Is it calm?", "Not really, it is busy."]))
        why = ["Why could it feel tense?", "The clutter feels chaotic."]
        out.append(_record(f"im{i}-reasoning", rel, why))
    return out


def test_kinds_select_the_data_types_and_pairs_become_items(built, tmp_path: Path) -> None:
    recipe, _, processor = built
    recs = _records(tmp_path, 2)
    assert [r["id"] for r in select_kinds(recs, ["categorical"])] == ["im0-categorical", "im1-categorical"]
    assert len(recipe.dataset(recs, processor, tmp_path, "finetune", kinds=["categorical"])) == 2
    two = ["categorical", "conversation"]
    assert len(recipe.dataset(recs, processor, tmp_path, "finetune", kinds=two)) == 6
    assert len(recipe.dataset(recs, processor, tmp_path, "finetune")) == 8  # conversation: 2 pairs each
    with pytest.raises(ValueError, match="choose one or more of"):
        select_kinds(recs, ["captions"])
    with pytest.raises(ValueError, match="one stage, 'finetune'"):
        recipe.dataset(recs, processor, tmp_path, "pretrain")


def test_loss_only_on_answer_tokens(built, tmp_path: Path) -> None:
    recipe, model, processor = built
    tok, qtok = processor.tokenizer, processor.qformer_tokenizer
    ds = recipe.dataset(_records(tmp_path, 1), processor, tmp_path, "finetune")
    items = [ds[0], ds[1]]  # categorical, first conversation pair (different lengths -> padding)
    q, a = P.emovit_categorical(LABELS, "amusement")
    ids, labels = items[0]["input_ids"].tolist(), items[0]["labels"].tolist()
    n_img = processor.num_query_tokens
    image_id = tok.convert_tokens_to_ids("<image>")
    assert ids[:n_img] == [image_id] * n_img and model.config.image_token_id == image_id
    answer = tok(" " + a, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert ids == [image_id] * n_img + tok(q)["input_ids"] + answer
    assert labels == [IGNORE] * (len(ids) - len(answer)) + answer
    assert items[0]["qformer_input_ids"].tolist() == qtok(q)["input_ids"]  # Q-Former reads the instruction
    batch = recipe.collator(processor)(items)
    k = len(items[1]["input_ids"])
    assert (batch["labels"][1, k:] == IGNORE).all() and (batch["attention_mask"][1, k:] == 0).all()
    assert batch["qformer_input_ids"].shape[0] == 2 and batch["pixel_values"].shape == (2, 3, 32, 32)
    with torch.no_grad():  # the model's loss == cross-entropy over the answer positions alone
        out = model(**batch)
    logits, lab = out.logits[:, :-1].float(), batch["labels"][:, 1:]
    keep = lab != IGNORE
    manual = torch.nn.functional.cross_entropy(logits[keep], lab[keep])
    assert torch.allclose(out.loss, manual, atol=1e-5)
    assert keep.sum() == sum(int((torch.as_tensor(x["labels"]) != IGNORE).sum()) for x in items)


def test_trains_qformer_side_only_vision_and_llm_bit_identical(built, tmp_path: Path) -> None:
    recipe, model, processor = built
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ds = recipe.dataset(_records(tmp_path, 2), processor, tmp_path, "finetune")
    args = TrainArgs(learning_rate=1e-2, max_steps=3, per_device_train_batch_size=2, save_steps=2,
                     warmup_ratio=0.0, precision="fp32")
    result = train_model(model, ds, recipe.collator(processor), args, tmp_path / "run",
                         trainable=recipe.trainable("finetune"), processor=processor)
    assert result["steps"] == 3 and result["final_loss"] is not None
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    frozen = [n for n in before if n.startswith(("vision_model.", "language_model."))]
    assert frozen and not changed & set(frozen)  # vision tower and LLM: bit-identical
    assert "query_tokens" in changed and any(n.startswith("language_projection.") for n in changed)
    assert any(n.startswith("qformer.encoder.") for n in changed)
    trainable = sum(p.numel() for n, p in model.named_parameters() if recipe.trainable("finetune")(n))
    assert result["trainable_parameters"] == trainable
    saved = (tmp_path / "run" / "model")
    assert (saved / "config.json").is_file() and (saved / "qformer_tokenizer").is_dir()
