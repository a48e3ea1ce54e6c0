"""The one factory of same-family tiny checkpoints keeps every released fact (tinyemo_core/tinymodels/facts),
and every loader of the project keeps them too: backbone embedding tables and tokenizers, the reasoning model
assembled from parts (CLIP + TinyLlama/Phi-2), LLaVA-1.5 and InstructBLIP sources, the open_clip encoder."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from tinyemo_core.generate.bunny.convert import check_placed
from tinyemo_core.tinymodels import FAMILIES, RELEASED, build_tiny, family_for, kept_facts, tiny_info

ROOT = Path(__file__).resolve().parent.parent
#: families saved in transformers' format (open_clip families write an open_clip config; OpenELM: stand-in)
HF_FAMILIES = [f for f in FAMILIES if not f.startswith(("openelm-", "openclip-"))]


def _nested(flat: dict) -> dict:
    out: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _check(source: dict, written: dict, where: str) -> int:
    n = check_placed({k: v for k, v in source.items() if not isinstance(v, dict)}, written, where)
    return n + sum(_check(v, written[k], f"{where}.{k}") for k, v in source.items() if isinstance(v, dict))


def test_every_model_the_profiles_name_has_a_family() -> None:
    flows = yaml.safe_load((ROOT / "flows.yaml").read_text())
    refs = [b["source"] for b in flows["backbones"].values() if "/" in b["source"] and ":" not in b["source"]]
    refs += ["openai/clip-vit-large-patch14", "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "BAAI/Bunny-v1_0-3B",
             "llava-hf/llava-1.5-7b-hf", "Salesforce/instructblip-vicuna-7b",
             "google/siglip-so400m-patch14-384", "clip-vit-l-14", "ViT-L-14",
             "apple/OpenELM-270M-Instruct@main"]
    assert all(family_for(r) is not None for r in refs), [r for r in refs if family_for(r) is None]
    assert family_for("someone/else") is None
    assert set(FAMILIES) == set(RELEASED)


@pytest.mark.parametrize("family", HF_FAMILIES)
def test_built_config_keeps_every_released_fact(tiny_checkpoint, family: str) -> None:
    folder = tiny_checkpoint(family)
    written = json.loads((folder / "config.json").read_text())
    facts = {k: v for k, v in kept_facts(family).items() if k != "mm_vision_tower"}  # -> the tiny tower
    compared = _check(_nested(facts), written, f"{family} config.json")
    assert compared >= 4
    assert tiny_info(folder)["family"] == family
    if family == "bunny":
        assert (Path(written["mm_vision_tower"]) / "config.json").is_file()


def test_tokenizers_keep_length_and_special_ids(tiny_checkpoint) -> None:
    from transformers import AutoTokenizer

    for family in ("tinyllama", "phi-2", "openelm-270m", "llava-1.5", "bunny"):
        tok = AutoTokenizer.from_pretrained(tiny_checkpoint(family))
        facts = RELEASED[family].tokenizer
        assert len(tok) == facts["length"], family
        for role in ("bos", "eos", "unk", "image", "pad"):
            if role in facts:
                assert tok.convert_tokens_to_ids(facts[role][0]) == facts[role][1], (family, role)
        assert tok.decode(tok("Predicted Label: joy").input_ids, skip_special_tokens=True) == (
            "Predicted Label: joy")


def test_openelm_stand_in_keeps_what_a_llama_can(tiny_checkpoint) -> None:
    cfg = json.loads((tiny_checkpoint("openelm-270m") / "config.json").read_text())
    facts = RELEASED["openelm-270m"].config
    assert cfg["tie_word_embeddings"] is facts["share_input_output_layers"] is True
    assert (cfg["vocab_size"], cfg["bos_token_id"], cfg["eos_token_id"]) == (32000, 1, 2)
    assert cfg["num_attention_heads"] // cfg["num_key_value_heads"] == facts["num_gqa_groups"]
    assert "Llama-shaped" in tiny_info(tiny_checkpoint("openelm-270m"))["stand_in"]


@pytest.mark.parametrize("family", ["tinyllama", "phi-2", "openelm-270m"])
def test_backbone_loader_keeps_vocabulary_and_ids(tiny_checkpoint, family: str, tmp_path: Path) -> None:
    from tinyemo_core.encoders.backbones import resolve_model_dir
    from tinyemo_core.encoders.embedding_table import load_embedding_table
    from tinyemo_core.encoders.specs import BackboneSpec
    from tinyemo_core.encoders.tokenization import load_text_tokenizer

    folder = resolve_model_dir(BackboneSpec(source=str(tiny_checkpoint(family))), tmp_path)
    vocab = RELEASED[family].config["vocab_size"]
    assert load_embedding_table(folder).shape[0] == vocab
    tok = load_text_tokenizer(folder)
    (with_special,), (plain,) = tok.encode_batch(["joy"], True), tok.encode_batch(["joy"], False)
    bos = RELEASED[family].config["bos_token_id"]
    if family == "phi-2":  # GPT-2 BPE adds no special token
        assert with_special == plain
    else:  # Llama's tokenizer prepends <s> (the paper's label embedding includes it)
        assert with_special == [bos, *plain] and bos == 1


def test_reasoning_model_from_parts_keeps_ids_untied_head_and_image_size(tiny_checkpoint) -> None:
    """TinyEmo's reasoner: CLIP ViT-L/14 + TinyLlama (§III-C). (Phi-2 as the reasoning LLM is not a paper
    setting; build_from_parts cannot load its biased head into LLaVA's bias-free one: reported, not here.)"""
    from tinyemo_core.finetune.model import build_reasoning_model, image_token_count
    from tinyemo_core.finetune.spec import ModelSpec

    clip = RELEASED["clip-vit-l-14"].config["vision_config"]
    for llm in ("tinyllama",):
        model, processor = build_reasoning_model(
            ModelSpec(vision=str(tiny_checkpoint("clip-vit-l-14")), llm=str(tiny_checkpoint(llm))))
        text = model.config.text_config.to_dict()
        facts = RELEASED[llm].config
        check_placed({k: facts[k] for k in ("rope_theta", "bos_token_id", "eos_token_id")}, text, llm)
        assert text["num_attention_heads"] // text["num_key_value_heads"] == 8  # TinyLlama's GQA groups
        assert not model.config.tie_word_embeddings and model.lm_head.weight.data_ptr() != (
            model.model.language_model.embed_tokens.weight.data_ptr())
        vision = model.config.vision_config
        assert (vision.image_size, vision.patch_size) == (clip["image_size"], clip["patch_size"])
        assert image_token_count(processor) == (224 // 14) ** 2


def test_llava_and_instructblip_sources_keep_token_ids_and_image_sizes(tiny_checkpoint) -> None:
    from tinyemo_core.finetune.model import build_from_source, image_token_count
    from tinyemo_core.finetune.recipes import emovit
    from tinyemo_core.finetune.spec import ModelSpec

    model, processor = build_from_source(ModelSpec(source=str(tiny_checkpoint("llava-1.5"))))
    facts = RELEASED["llava-1.5"].config
    assert (model.config.image_token_index, model.config.vision_config.image_size) == (32000, 336)
    assert processor.tokenizer.pad_token_id == facts["pad_token_id"] == 32001
    assert image_token_count(processor) == 576
    blip, _ = emovit.build(ModelSpec(source=str(tiny_checkpoint("instructblip-vicuna"))))
    ib = RELEASED["instructblip-vicuna"].config
    assert blip.config.num_query_tokens == ib["num_query_tokens"] == 32
    assert blip.config.qformer_config.cross_attention_frequency == 2
    assert blip.config.vision_config.image_size == 224 and blip.config.text_config.vocab_size == 32001


def test_open_clip_encoder_keeps_image_and_patch_size(tiny_checkpoint) -> None:
    from tinyemo_core.encoders.specs import VisionEncoderSpec
    from tinyemo_core.encoders.vision import load_vision_encoder

    info = tiny_info(tiny_checkpoint("openclip-vit-l-14"))["open_clip"]
    enc = load_vision_encoder(VisionEncoderSpec(**info, device="cpu"))
    visual = enc.visual
    facts = RELEASED["openclip-vit-l-14"].config["vision_cfg"]
    assert enc.image_size == facts["image_size"] and tuple(visual.image_size) == (facts["image_size"],) * 2
    assert tuple(visual.patch_size) == (facts["patch_size"],) * 2
    from PIL import Image

    assert tuple(enc.preprocess(Image.new("RGB", (50, 30))).shape) == (3, 224, 224)


def test_a_built_folder_is_reused(tiny_checkpoint) -> None:
    folder = tiny_checkpoint("phi-2")
    t0 = time.perf_counter()
    assert build_tiny("phi-2", folder) == folder
    assert time.perf_counter() - t0 < 0.5
    with pytest.raises(KeyError, match="unknown tiny family"):
        build_tiny("gpt-5", folder.parent / "x")
