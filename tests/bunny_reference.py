"""Test helper: Bunny-Phi's forward pass as the authors' code runs it (BAAI-DCAI/Bunny), on its checkpoint.

- ``BunnyPhiForCausalLM``: Phi with its head replaced by ``nn.Linear(hidden, vocab, bias=False)``;
- ``SiglipVisionTower``: ``SiglipVisionModel`` features = ``hidden_states[-2]`` (select_layer -2, all
  patch tokens, SigLIP has no CLS); ``mlp2x_gelu`` projector (Linear, GELU, Linear);
- ``prepare_inputs_labels_for_multimodal``: the text ids around each ``-200`` are embedded together then
  split, the image features are spliced in, the sequence is cut to ``tokenizer_model_max_length``,
  attention mask all ones and position ids ``0..n-1`` (right padding, batch of one);
- ``process_images`` with ``image_aspect_ratio: pad``: square canvas of the mean colour, SigLIP processor.

It proves the LLaVA conversion exact; it reads the Bunny folder, never the converted one.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import nn

from tinyemo_core.generate.bunny.image import expand_to_square, mean_fill
from tinyemo_core.generate.bunny.weights import VISION_IN, read_state_dict

IMAGE_TOKEN_INDEX = -200


class BunnyReference(nn.Module):
    """SigLIP tower + mlp2x_gelu projector + Phi with a bias-free head, under Bunny's tensor names."""

    def __init__(self, text_config, vision_config, mm_hidden: int, max_length: int | None) -> None:
        from transformers import PhiForCausalLM, SiglipVisionModel

        super().__init__()
        h = text_config.hidden_size
        self.vision = SiglipVisionModel(vision_config)
        self.projector = nn.Sequential(nn.Linear(mm_hidden, h), nn.GELU(), nn.Linear(h, h))
        self.lm = PhiForCausalLM(text_config)
        self.lm.lm_head = nn.Linear(h, text_config.vocab_size, bias=False)  # BunnyPhiForCausalLM's head
        self.max_length = max_length

    @classmethod
    def from_folder(cls, folder: str | Path) -> tuple[BunnyReference, object, object]:
        """(model, tokenizer, image processor) from a Bunny-Phi folder whose ``mm_vision_tower`` is local."""
        from transformers import AutoTokenizer, PhiConfig, SiglipImageProcessor, SiglipVisionConfig

        from tinyemo_core.generate.bunny.convert import text_fields

        folder = Path(folder)
        raw = __import__("json").loads((folder / "config.json").read_text())
        tower = Path(raw["mm_vision_tower"])
        model = cls(PhiConfig(**text_fields(raw)), SiglipVisionConfig.from_pretrained(tower),
                    raw["mm_hidden_size"], raw.get("tokenizer_model_max_length"))
        state = read_state_dict(folder)
        vision = {k[len(VISION_IN):]: v for k, v in state.items() if k.startswith(VISION_IN)}
        pp = "model.mm_projector."
        proj = {k[len(pp):]: v for k, v in state.items() if k.startswith(pp)}
        lm = {k: v for k, v in state.items() if not k.startswith(("model.vision_tower.", pp))}
        model.vision.load_state_dict(vision, strict=True)
        model.projector.load_state_dict(proj, strict=True)
        model.lm.load_state_dict(lm, strict=True)  # no lm_head.bias in the checkpoint, none in the model
        tok, processor = AutoTokenizer.from_pretrained(folder), SiglipImageProcessor.from_pretrained(tower)
        return model.float().eval(), tok, processor

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.vision(pixel_values, output_hidden_states=True).hidden_states[-2]
        return self.projector(hidden)

    def embed(self, input_ids: list[int], features: torch.Tensor | None) -> torch.Tensor:
        """``prepare_inputs_labels_for_multimodal`` for one sequence (``features``: projected images)."""
        table = self.lm.get_input_embeddings()
        ids = torch.tensor(input_ids)
        if IMAGE_TOKEN_INDEX not in input_ids:
            embeds = table(ids)
        else:
            cuts = [-1, *torch.where(ids == IMAGE_TOKEN_INDEX)[0].tolist(), len(input_ids)]
            chunks = [ids[cuts[i] + 1:cuts[i + 1]] for i in range(len(cuts) - 1)]
            text = torch.split(table(torch.cat(chunks)), [len(c) for c in chunks])
            parts = []
            for i, t in enumerate(text):
                parts.append(t)
                if i < len(text) - 1:
                    parts.append(features[i])  # type: ignore[index]
            embeds = torch.cat(parts)
        return embeds[: self.max_length] if self.max_length else embeds

    @torch.no_grad()
    def logits(self, input_ids: list[int], pixel_values: torch.Tensor | None, last: int = 0,
               features: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of every position (``last`` > 0: of the last ``last`` positions only)."""
        if features is None and pixel_values is not None:
            features = self.encode_images(pixel_values)
        embeds = self.embed(input_ids, features)[None]
        n = embeds.shape[1]
        return self.lm(inputs_embeds=embeds, attention_mask=torch.ones(1, n, dtype=torch.long),
                       position_ids=torch.arange(n)[None], logits_to_keep=last).logits[0]

    @torch.no_grad()
    def greedy(self, input_ids: list[int], pixels: torch.Tensor | None, max_new_tokens: int) -> list[int]:
        """Greedy decoding by full recomputation of the language model (no KV cache; the frozen tower's
        features are computed once, as Bunny's generate does)."""
        features = self.encode_images(pixels) if pixels is not None else None
        ids, new = list(input_ids), []
        for _ in range(max_new_tokens):
            nxt = int(self.logits(ids, None, last=1, features=features)[-1].argmax())
            ids.append(nxt)
            new.append(nxt)
            if nxt == self.lm.config.eos_token_id:
                break
        return new


def bunny_input_ids(tokenizer, prompt: str) -> list[int]:
    """Bunny's ``tokenizer_image_token``: chunks around ``<image>`` tokenized separately, joined by -200."""
    chunks = [tokenizer(c, add_special_tokens=False).input_ids for c in prompt.split("<image>")]
    ids = list(chunks[0])
    for chunk in chunks[1:]:
        ids += [IMAGE_TOKEN_INDEX, *chunk]
    return ids


def bunny_pixels(image: Image.Image, image_processor) -> torch.Tensor:
    """Bunny's ``process_images`` with ``image_aspect_ratio: pad``."""
    square = expand_to_square(image.convert("RGB"), mean_fill(image_processor.image_mean))
    return image_processor(square, return_tensors="pt")["pixel_values"]
