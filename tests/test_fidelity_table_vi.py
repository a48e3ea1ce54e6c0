"""TinyEmo Table VI (§IV-D): Affective Explanations in its released layout, the LLaVA-1.5 LoRA profile,
human explanations as RefCLIPScore references, 4-bit inference refused on CPU, CLIPScore's own encoder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tinyemo_core.config import ConfigError, load_config
from tinyemo_core.data.adapters import list_samples
from tinyemo_core.data.adapters.affection import PREPROCESSED, RAW, check_affection

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows.yaml"
DOG = "COCO_train2014_000000206192.jpg"
ROWS = [  # workerid, utterance, emotion, dataset, image_name, split
    ("w1", "The puppy looks so happy, it makes me smile", "amusement", "coco_affective", DOG, "train"),
    ("w2", "A calm morning with a dog", "contentment", "coco_affective", DOG, "train"),
    ("w3", "Dogs playing always cheer me up", "amusement", "coco_affective", DOG, "train"),
    ("w1", "The dark alley feels threatening", "fear", "flickr30k_affective", "1000092795.jpg", "test"),
    ("w4", "So lonely and empty", "sadness", "flickr30k_affective", "1000092795.jpg", "test"),
    ("w5", "", "something else", "you_aaai_affective", "x.jpg", "val"),  # no explanation: kept, no pair
]


def _release(root: Path, *, preprocessed: bool = True) -> Path:
    """The public release's CSV (the columns its README documents) + images/<dataset>/<image_name>."""
    folder = root / "language" / "version_0"
    folder.mkdir(parents=True)
    cols = ["workerid", "utterance", "emotion", "dataset", "image_name"]
    with (folder / (PREPROCESSED if preprocessed else RAW)).open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols + (["utterance_spelled", "tokens", "tokens_len", "tokens_encoded", "split"]
                           if preprocessed else []))
        for r in ROWS:
            w.writerow(list(r[:5]) + ([r[1].lower(), "[]", 0, "[]", r[5]] if preprocessed else []))
    for _, _, _, source, name, _ in ROWS:
        (root / "images" / source).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 12), (90, 120, 30)).save(root / "images" / source / name, format="JPEG")
    return root


def test_adapter_reads_the_released_csv(tmp_path: Path) -> None:
    assert check_affection(tmp_path) and not check_affection(_release(tmp_path / "a"))
    result = list_samples("affection", tmp_path / "a")
    by = {r.path: r for r in result.records}
    dog = by[f"images/coco_affective/{DOG}"]
    assert dog.labels == ["amusement", "contentment"] and dog.split == "train"  # majority first
    assert dog.attributes["explanations"] == [r[1] for r in ROWS[:3]]  # the references, raw text
    alley = by["images/flickr30k_affective/1000092795.jpg"]
    assert alley.split == "test" and alley.labels[0] == "fear"
    assert result.notes.get("tied majority emotion (earliest listed kept first)") == 1
    raw = list_samples("affection", _release(tmp_path / "r", preprocessed=False), seed=0)
    assert len(raw.records) == 3  # no split column: a seeded split is made


def test_pairs_prompt_and_references(tmp_path: Path) -> None:
    from tinyemo_core.generate.affection_export import write_affection_exports
    from tinyemo_core.judge.plan import load_items

    root = _release(tmp_path / "a")
    rows = [dict(image_id=Path(r.path).stem, path=r.path, split=r.split, label=r.labels[0], labels=r.labels,
                 taxonomy="open", dataset="affection", status="ok", error=None,
                 attributes=json.dumps(r.attributes)) for r in list_samples("affection", root).records]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "m.parquet")
    out = write_affection_exports(tmp_path / "m.parquet", tmp_path / "exports")
    assert out["records"] == {"test": 2, "train": 3}  # one pair per explanation; none for an empty one
    pairs = json.loads(Path(out["files"]["affection_train"]).read_text())
    assert {p["conversations"][0]["value"] for p in pairs} == {"<image>\nWhat does this image make you feel?"}
    assert sorted(p["conversations"][1]["value"] for p in pairs) == sorted(r[1] for r in ROWS[:3])
    items, _ = load_items("affection", tmp_path / "m.parquet", root, "test")
    assert items[0].references == ("The dark alley feels threatening", "So lonely and empty")


def test_table_vi_profile() -> None:
    cfg = load_config(FLOWS, "paper-table-vi")
    r = cfg.spec.reasoning
    assert r.recipe == "llava" and r.model.source == "llava-hf/llava-1.5-7b-hf" and r.stages == ["finetune"]
    t = r.finetune.train
    assert (t.learning_rate, t.num_train_epochs, t.lr_scheduler_type, t.warmup_ratio, t.precision) == (
        2e-4, 3, "cosine", 0.03, "auto")  # auto: bf16 on a GPU that has it (the paper's), fp32 on CPU
    assert t.per_device_train_batch_size * t.gradient_accumulation_steps == 32 and t.lora is not None
    assert r.finetune.max_records == 45000  # §IV-D; the Table VI caption's 75k: --set ...max_records=75000
    assert load_config(FLOWS, "paper-table-vi", ["reasoning.finetune.max_records=75000"]).spec.reasoning \
        .finetune.max_records == 75000
    ev = cfg.spec.evaluate_generated
    assert ev.recipe == "llava" and not ev.accuracy and ev.load_in_4bit
    assert ev.clipscore.prompt == "What does this image make you feel?"
    assert ev.clipscore.references == "dataset"
    b32 = cfg.flows.encoders[ev.clipscore.encoder]
    assert (b32.model, b32.pretrained) == ("ViT-B-32", "openai")  # Hessel et al.
    with pytest.raises(ConfigError, match="clipscore.encoder: unknown encoder 'vit-h'"):
        load_config(FLOWS, "paper-table-vi", ["evaluate_generated.clipscore.encoder=vit-h"])
    with pytest.raises(ConfigError, match="set accuracy: false"):
        load_config(FLOWS, "paper-table-vi", ["evaluate_generated.accuracy=true"])


def test_llava_recipe_is_llava_15_format_on_instruction_exports() -> None:
    from tinyemo_core.finetune.model import CHAT_TEMPLATE
    from tinyemo_core.finetune.recipes import get_recipe, recipe_info
    from tinyemo_core.finetune.spec import ModelSpec, TinyModelSpec

    assert recipe_info("llava").exports == "instructions"  # instructions/affection/affection_<split>.json
    _, processor = get_recipe("llava").build(ModelSpec(tiny=TinyModelSpec(hidden=16, vision_hidden=16)))
    assert processor.chat_template == CHAT_TEMPLATE and processor.image_processor.do_pad


def test_clipscore_encoder_is_chosen_apart_from_the_features() -> None:
    from tinyemo_core.stages.evaluate_generated import scoring_encoder

    cfg = load_config(FLOWS, "paper-table-vi")
    spec = cfg.spec.evaluate_generated
    assert scoring_encoder(spec, cfg.flows.encoders, cfg.encoder).model == "ViT-B-32"
    assert cfg.encoder.model == "ViT-L-14"  # the feature store's encoder stays
    plain = spec.model_copy(update={"clipscore": spec.clipscore.model_copy(update={"encoder": None})})
    assert scoring_encoder(plain, cfg.flows.encoders, cfg.encoder) is cfg.encoder


def test_4bit_inference_is_refused_on_cpu_with_one_line(tmp_path: Path) -> None:
    import torch

    from tinyemo_core.judge.spec import EvaluateGeneratedSpec
    from tinyemo_core.stages.evaluate_generated import make_generator

    if torch.cuda.is_available():
        pytest.skip("this check is about machines without CUDA")
    spec = EvaluateGeneratedSpec(recipe="llava", model=str(tmp_path), accuracy=False, load_in_4bit=True,
                                 clipscore={})
    with pytest.raises(ValueError, match=r"^load_in_4bit needs a CUDA GPU .*evaluate_generated.load_in_4bit"):
        make_generator(spec)
