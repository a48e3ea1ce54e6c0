"""Tiny LLaVA-format exports with real image files (tests, demo, benchmarks): offline, seeded, instant."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from tinyemo_core.data.demo import DEMO_DATASETS
from tinyemo_core.generate import prompts as P
from tinyemo_core.generate.backends.demo_grounded import corpus
from tinyemo_core.generate.export import IMAGE_PREFIX, write_json

LABELS = ("joy", "sadness", "fear", "anger")


def tiny_images(root: Path, n: int, *, size: int = 32, seed: int = 0) -> list[str]:
    """Write ``n`` seeded PNGs (a colour per class + noise) under ``root/img``; return relative paths."""
    rng = np.random.default_rng(seed)
    (Path(root) / "img").mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        base = np.array([60 * (i % 4), 200 - 50 * (i % 4), 40 + 30 * (i % 3)], dtype=np.float32)
        arr = np.clip(base + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
        rel = f"img/{i:04d}.png"
        Image.fromarray(arr).save(Path(root) / rel)
        out.append(rel)
    return out


def tiny_exports(
    root: Path, n: int = 8, *, labels: Sequence[str] = LABELS, conditional: bool = True, seed: int = 0
) -> dict[str, Path]:
    """``pretrain_train.json`` (caption + sentiment Q/A) and ``emoreason_train.json`` over ``n`` images."""
    root = Path(root)
    images = tiny_images(root, n, seed=seed)
    pre, reason = [], []
    for i, rel in enumerate(images):
        label = labels[i % len(labels)]
        cap = f"a small picture in tone {i % 4} with a {label} mood"
        pre.append(_rec(f"{i:04d}-caption", rel, P.strip_image_tag(P.CAPTION_PROMPT), cap))
        pre.append(_rec(f"{i:04d}-sentiment", rel, "How does this picture feel?", f"It feels like {label}."))
        instr = P.strip_image_tag(P.emoreason_instruction(labels, label if conditional else None))
        answer = P.emoreason_answer(f"The colours suggest {label}.", label)
        reason.append(_rec(f"{i:04d}-emoreason", rel, instr, answer))
    out = {"pretrain_train": root / "pretrain_train.json", "emoreason_train": root / "emoreason_train.json"}
    write_json(pre, out["pretrain_train"])
    write_json(reason, out["emoreason_train"])
    return out


def _rec(rid: str, image: str, human: str, gpt: str) -> dict:
    return {
        "id": rid,
        "image": image,
        "conversations": [{"from": "human", "value": IMAGE_PREFIX + human}, {"from": "gpt", "value": gpt}],
    }


# --- the demo reasoner's word-level tokenizer -------------------------------------------------------------
#: One piece per word, number, punctuation mark or newline; a word keeps the space before it.
WORD_PIECES = r" ?[A-Za-z]+| ?[0-9]+| ?[^A-Za-z0-9\s]|\n| "


def word_corpus() -> list[str]:
    """The texts whose words the word tokenizer knows: the prompts, chat template and label words the BPE
    tokenizer is trained on, the demo datasets' class words (some are the datasets' own spellings, e.g.
    WEBEmo's "cheerfullness") and every word the grounded demo generator writes."""
    from tinyemo_core.finetune.model import _tiny_corpus
    words = sorted({w for entry in DEMO_DATASETS.values() for w in entry[3]})
    return [*_tiny_corpus(), " ".join(words), *corpus()]


def word_tokenizer():
    """A word-level tokenizer over :func:`word_corpus` (each word with and without its leading space):
    the demo's prompts and answers become a third as many tokens as with the 512-piece BPE, every label word
    is one token, and decoding joins the pieces back exactly. Words outside the corpus become ``<unk>``
    (dropped when decoding), so it is for the demo and tests, not for free text."""
    import re

    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from tinyemo_core.finetune.model import IMAGE_TOKEN

    special = ["<pad>", "<unk>", "<s>", "</s>", IMAGE_TOKEN]
    pieces: set[str] = {"\n", " "}
    for text in word_corpus():
        for piece in re.findall(WORD_PIECES, text):
            pieces.update({piece.lstrip(" "), " " + piece.lstrip(" ")} if piece.strip() else {piece})
    vocab = {t: i for i, t in enumerate([*special, *sorted(pieces)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(WORD_PIECES), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=[IMAGE_TOKEN],
        clean_up_tokenization_spaces=False,
    )
