"""Offline stand-in tokenizers that keep a released tokenizer's length and special-token ids.

A byte-level BPE is trained in milliseconds on a few prompt sentences (any text encodes, exact round trip);
the remaining ids up to the released length are filled with pseudo-words (``Ġ`` + letters: a random model
that samples them writes plain words, never template markers) and the special tokens sit at their released
ids. The tokenizer *family* (SentencePiece for Llama, GPT-2 BPE for Phi) is not reproduced, only its ids.
"""

from __future__ import annotations

from itertools import count, product
from string import ascii_lowercase

CORPUS = (
    "A chat between a curious user and an artificial intelligence assistant.",
    "USER: <image>\nDescribe the image in 2-3 concise sentences. ASSISTANT: A red square on grey.",
    "Generate a question about the visual content of the image. What emotion does the scene evoke?",
    "Reasoning: the people are smiling in warm light.\nPredicted Label: happiness",
    "amusement anger awe contentment disgust excitement fear sadness joy love surprise neutral",
)


def _pseudo_words(taken: set[str]):
    for n in count(2):
        for letters in product(ascii_lowercase, repeat=n):
            word = "Ġ" + "".join(letters)
            if word not in taken:
                yield word


def synthetic_tokenizer(
    length: int,
    specials: dict[int, str],
    roles: dict[str, str],
    *,
    model_max_length: int = 2048,
    padding_side: str = "right",
    add_bos: bool = False,
):
    """A ``PreTrainedTokenizerFast`` with ``len() == length`` and each ``specials[id]`` at ``id``.

    ``roles`` maps ``bos``/``eos``/``unk``/``pad`` to special-token strings. ``add_bos``: encoding with
    special tokens prepends BOS, as Llama's tokenizer does (GPT-2/Phi add nothing).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    trained.train_from_iterator(list(CORPUS) * 2, trainer=trainer)
    learned = sorted(trained.get_vocab().items(), key=lambda kv: kv[1])
    merges = [
        tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m)
        for m in __import__("json").loads(trained.to_str())["model"]["merges"]
    ]
    free = [i for i in range(length) if i not in specials]
    if len(free) < len(learned):
        raise ValueError(f"length {length} leaves no room for the {len(learned)} byte-level base tokens")
    vocab = {tok: specials_id for specials_id, tok in specials.items()}
    ids = iter(free)
    for tok, _ in learned:
        vocab[tok] = next(ids)
    words = _pseudo_words(set(vocab))
    for i in ids:
        vocab[next(words)] = i
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials.values()])
    if add_bos:
        bos = roles["bos"]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])])
    out = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=model_max_length,
        padding_side=padding_side,
        **{f"{role}_token": s for role, s in roles.items()},
    )
    if len(out) != length or any(out.convert_tokens_to_ids(s) != i for i, s in specials.items()):
        raise AssertionError("synthetic tokenizer lost a special-token id")  # a builder defect, not input
    return out
