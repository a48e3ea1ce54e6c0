"""Bunny-Phi -> LLaVA conversion on checkpoints saved the way Bunny's training code saves them (no head bias,
partial_rotary_factor 0.4, Phi-2 token ids): exact equivalence with the authors' forward pass
(tests/bunny_reference.py), every config field carried, strict key accounting, layout read by
vLLM/transformers, idempotence, clear errors. Tiny random checkpoints, offline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from bunny_reference import IMAGE_TOKEN_INDEX, BunnyReference, bunny_input_ids, bunny_pixels
from PIL import Image
from safetensors.torch import load_file, save_file

from tinyemo_core.generate.bunny import BunnyConversionError, bunny_prompt, convert_bunny, load_converted
from tinyemo_core.generate.bunny.image import expand_to_square, mean_fill
from tinyemo_core.tinymodels.bunny import build_tiny_bunny

TOL = 1e-5  # max |logit difference| accepted, fp32 on CPU
QUESTION = "Describe the image in 2-3 concise sentences."


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("bunny")
    src = build_tiny_bunny(root / "bunny", seed=3)
    desc = convert_bunny(src, root / "llava")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 36, 3), dtype=np.uint8))
    return {"root": root, "src": src, "dst": root / "llava", "desc": desc, "image": image}


def _llava_inputs(dst: Path, image: Image.Image, messages: list[dict]) -> dict:
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(dst)
    text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    square = expand_to_square(image.convert("RGB"), mean_fill(proc.image_processor.image_mean))
    return dict(proc(images=square, text=text, return_tensors="pt"))


def _collapse(ids: list[int], image_id: int) -> list[int]:
    out: list[int] = []
    for t in ids:
        if t == image_id and out and out[-1] == IMAGE_TOKEN_INDEX:
            continue
        out.append(IMAGE_TOKEN_INDEX if t == image_id else t)
    return out


def _compare(src: Path, dst: Path, image: Image.Image, image_id: int, new_tokens: int = 6,
             ) -> tuple[float, list[int], list[int]]:
    ref, tok, ip = BunnyReference.from_folder(src)
    ids = bunny_input_ids(tok, bunny_prompt([("user", QUESTION)], has_image=True))
    pixels = bunny_pixels(image, ip)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    inputs = _llava_inputs(dst, image, messages)
    assert torch.equal(inputs["pixel_values"], pixels)  # client-side padding reproduces Bunny's pixels
    assert _collapse(inputs["input_ids"][0].tolist(), image_id) == ids  # same tokens, image run = one -200
    model = load_converted(dst)
    with torch.no_grad():
        logits = model(**inputs).logits[0]
    want = ref.logits(ids, pixels)
    diff = float((logits[:, : want.shape[1]] - want).abs().max())
    n = inputs["input_ids"].shape[1]
    out = model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False)[0, n:].tolist()
    return diff, out, ref.greedy(ids, pixels, new_tokens)


def test_same_logits_and_greedy_tokens_as_reference(world: dict) -> None:
    diff, got, want = _compare(world["src"], world["dst"], world["image"], world["desc"]["image_token_index"])
    assert diff <= TOL
    assert got == want and len(got) == 6


def test_checkpoint_saved_the_authors_way_keeps_every_config_field(world: dict) -> None:
    """No lm_head.bias in the source (a zero one is written for vLLM's Phi head), partial_rotary_factor 0.4
    and rope_theta carried into text_config's rope_parameters (transformers 5), every row kept."""
    from transformers import LlavaConfig

    src, dst, desc = world["src"], world["dst"], world["desc"]
    index = json.loads((src / "model.safetensors.index.json").read_text())["weight_map"]
    assert "lm_head.weight" in index and "lm_head.bias" not in index
    source = json.loads((src / "config.json").read_text())
    assert source["partial_rotary_factor"] == 0.4 and source["vocab_size"] == desc["tokenizer_length"] - 1
    written = json.loads((dst / "config.json").read_text())["text_config"]
    rope = written.get("rope_parameters") or written
    assert rope["partial_rotary_factor"] == 0.4 and rope["rope_theta"] == source["rope_theta"]
    cfg = LlavaConfig.from_pretrained(dst).text_config
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    model = load_converted(dst)
    rotary = model.model.language_model.rotary_emb.inv_freq.numel() * 2
    assert rotary == int(0.4 * head_dim) == 4  # 0.5 (the default) would rotate 5 of 10 dims
    assert desc["lm_head_bias"].startswith("zeros") and desc["config_fields"]["compared"]["text_config"] >= 15
    assert desc["config_fields"]["training_only"] == ["freeze_mm_mlp_adapter", "mm_projector_lr",
                                                      "tune_mm_mlp_adapter"]
    bias = model.lm_head.bias
    bias = bias.detach()
    assert float(bias[:-1].abs().max()) == 0.0 and float(bias[-1]) == -1e4  # the grown <image> row never wins


def test_unknown_config_field_fails_loudly(world: dict, tmp_path: Path) -> None:
    src = Path(shutil.copytree(world["src"], tmp_path / "b"))
    cfg = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps(cfg | {"rotary_interleave_magic": 3}))
    with pytest.raises(BunnyConversionError, match="'rotary_interleave_magic'.*cannot place it"):
        convert_bunny(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_plain_transformers_llava_drops_phi_head_bias(world: dict) -> None:
    """Without load_converted's fix the logits lack the head bias (zero, except the grown <image> row)."""
    from transformers import LlavaForConditionalGeneration

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    inputs = _llava_inputs(world["dst"], world["image"], messages)
    plain = LlavaForConditionalGeneration.from_pretrained(world["dst"], dtype=torch.float32).eval()
    fixed = load_converted(world["dst"])
    with torch.no_grad():  # the last position is enough: the head bias is added to every position alike
        a, b = plain(**inputs, logits_to_keep=1).logits[0], fixed(**inputs, logits_to_keep=1).logits[0]
    assert float((a - b).abs().max()) > 1e-3
    assert torch.allclose(a + fixed.lm_head.bias, b, atol=TOL)


def test_converted_layout_config_and_processor(world: dict) -> None:
    from transformers import AutoProcessor, LlavaConfig

    dst, desc = world["dst"], world["desc"]
    cfg = LlavaConfig.from_pretrained(dst)
    assert (cfg.vision_feature_layer, cfg.vision_feature_select_strategy) == (-2, "full")
    assert cfg.vision_config.model_type == "siglip_vision_model"
    assert cfg.vision_config.vision_use_head is False
    assert cfg.text_config.model_type == "phi" and cfg.text_config.architectures == ["PhiForCausalLM"]
    assert cfg.image_token_index == desc["image_token_index"] == cfg.text_config.vocab_size - 1  # grown by 1
    tensors = {}
    for f in sorted(dst.glob("*.safetensors")):
        tensors |= load_file(f)
    assert "language_model.lm_head.bias" in tensors and "multi_modal_projector.linear_2.weight" in tensors
    assert all(k.startswith(("vision_tower.vision_model.", "multi_modal_projector.", "language_model."))
               for k in tensors)
    assert not any(".head." in k for k in tensors)  # SigLIP pooling head dropped (listed in the marker)
    assert len(desc["dropped"]) == 11
    assert float(tensors["language_model.lm_head.bias"][-1]) == -1e4  # the new <image> row never wins
    assert (dst / "chat_template.jinja").is_file() and desc["pad_color"] == [127, 127, 127]
    proc = AutoProcessor.from_pretrained(dst)
    out = proc(images=Image.new("RGB", (28, 28)), text="<image>\nhi", return_tensors="pt")
    assert int((out["input_ids"] == cfg.image_token_index).sum()) == desc["image_seq_length"] == 27 * 27


def test_chat_template_is_bunny_format(world: dict) -> None:
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(world["dst"])
    turns = [("user", "Ask a question."), ("assistant", "Why?"), ("user", "Answer it.")]
    messages = [{"role": "system", "content": "Be brief."}]
    messages += [{"role": r, "content": [{"type": "text", "text": t}]} for r, t in turns]
    messages[1]["content"].insert(0, {"type": "image"})
    text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == bunny_prompt(turns, has_image=True, system="Be brief.")
    assert text == ("Be brief. USER: <image>\nAsk a question. ASSISTANT: Why?<|endoftext|>"
                    "USER: Answer it. ASSISTANT:")
    # vLLM's "string" content format: the placeholder is already in the text
    plain = [{"role": "user", "content": "<image>\n" + QUESTION}]
    assert proc.apply_chat_template(plain, add_generation_prompt=True, tokenize=False) == bunny_prompt(
        [("user", QUESTION)], has_image=True)


def test_second_conversion_is_a_no_op(world: dict) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in world["dst"].iterdir()}
    again = convert_bunny(world["src"], world["dst"])
    assert again == world["desc"]
    assert {p.name: p.stat().st_mtime_ns for p in world["dst"].iterdir()} == before


def _edit_shard(src: Path, edit) -> None:
    index = json.loads((src / "model.safetensors.index.json").read_text())
    shard = src / "model-00001-of-00002.safetensors"
    tensors = load_file(shard)
    edit(tensors, index)
    save_file(tensors, shard, metadata={"format": "pt"})
    (src / "model.safetensors.index.json").write_text(json.dumps(index))


def test_unexpected_key_is_named(world: dict, tmp_path: Path) -> None:
    src = Path(shutil.copytree(world["src"], tmp_path / "b"))

    def add(t: dict, index: dict) -> None:
        t["model.extra_adapter.weight"] = torch.zeros(2)
        index["weight_map"]["model.extra_adapter.weight"] = "model-00001-of-00002.safetensors"

    _edit_shard(src, add)
    with pytest.raises(BunnyConversionError, match=r"unexpected tensor 'model\.extra_adapter\.weight'"):
        convert_bunny(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_tensor_is_named(world: dict, tmp_path: Path) -> None:
    src = Path(shutil.copytree(world["src"], tmp_path / "b"))
    index = json.loads((src / "model.safetensors.index.json").read_text())
    victim = next(k for k, f in sorted(index["weight_map"].items())
                  if f.startswith("model-00001") and k.startswith("model.layers.1."))

    def drop(t: dict, idx: dict) -> None:
        del t[victim], idx["weight_map"][victim]

    _edit_shard(src, drop)
    with pytest.raises(BunnyConversionError, match=rf"missing tensor '{victim}'"):
        convert_bunny(src, tmp_path / "out")


def test_bin_weights_spare_rows_and_truncated_tower(world: dict, tmp_path: Path) -> None:
    """A pickled .bin state dict (read with weights_only), more rows than tokens (a checkpoint saved without
    Bunny's resize keeps Phi-2's layout, 51,200 rows for 50,295 tokens), and a tower saved without its last
    layer and head: still exactly Bunny, every row kept."""
    src = build_tiny_bunny(tmp_path / "b", seed=5, extra_vocab_rows=8, weights="bin")
    full = torch.load(src / "pytorch_model.bin", weights_only=True)
    last = "model.vision_tower.vision_tower.vision_model.encoder.layers.2."
    cut = {k: v for k, v in full.items() if not k.startswith(last) and ".vision_model.head." not in k}
    trunc = Path(shutil.copytree(src, tmp_path / "t"))
    torch.save(cut, trunc / "pytorch_model.bin")
    desc = convert_bunny(trunc, tmp_path / "out")
    assert (desc["vision_layers"], desc["vision_feature_layer"], desc["dropped"]) == (2, -1, [])
    assert desc["vocab_size"] == full["lm_head.weight"].shape[0] == desc["tokenizer_length"] + 7  # <image> in
    diff, got, want = _compare(src, tmp_path / "out", world["image"], desc["image_token_index"], new_tokens=3)
    assert diff <= TOL and got == want


def test_bad_sources_fail_clearly(world: dict, tmp_path: Path) -> None:
    with pytest.raises(BunnyConversionError, match="huggingface-cli download"):
        convert_bunny("BAAI/Bunny-v1_0-3B", tmp_path / "out")  # HF_HUB_OFFLINE=1 in the tests
    src = Path(shutil.copytree(world["src"], tmp_path / "b"))
    cfg = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps(cfg | {"model_type": "bunny-llama"}))
    with pytest.raises(BunnyConversionError, match="only Bunny-Phi"):
        convert_bunny(src, tmp_path / "out")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(BunnyConversionError, match="not this conversion's output"):
        convert_bunny(world["src"], tmp_path / "busy")


def test_convert_bunny_cli(tmp_path: Path) -> None:
    """`tinyemo convert-bunny SRC DST` converts, is idempotent, and fails clearly (exit 2) on a bad source."""
    from typer.testing import CliRunner

    from pipelines.cli import app
    from tinyemo_core.tinymodels.bunny import build_tiny_bunny

    src = build_tiny_bunny(tmp_path / "bunny")
    runner = CliRunner()
    out = runner.invoke(app, ["convert-bunny", str(src), str(tmp_path / "llava")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "llava" / "tinyemo_conversion.json").exists() and "vllm serve" in out.output
    again = runner.invoke(app, ["convert-bunny", str(src), str(tmp_path / "llava")])
    assert again.exit_code == 0, again.output
    bad = runner.invoke(app, ["convert-bunny", str(tmp_path / "missing"), str(tmp_path / "x")])
    assert bad.exit_code == 2
