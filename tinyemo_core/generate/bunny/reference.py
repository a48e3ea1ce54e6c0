"""A reference forward pass of Bunny-Phi written from its published architecture (BAAI-DCAI/Bunny,
``bunny_arch.py`` / ``siglip_encoder.py`` / ``mm_utils.py``), with transformers building blocks.

image -> square pad with the mean colour -> SigLIP processor -> ``SiglipVisionModel`` hidden_states[-2]
(all patch tokens) -> ``Linear, GELU, Linear`` -> spliced in place of the single ``-200`` id of the prompt
(text chunks tokenized separately around ``<image>``) -> ``PhiForCausalLM`` on ``inputs_embeds``.
Used to prove the LLaVA conversion exact; it runs on the Bunny checkpoint, not on the converted folder.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import nn

from .image import expand_to_square, mean_fill
from .weights import VISION_IN, read_state_dict

IMAGE_TOKEN_INDEX = -200


class BunnyReference(nn.Module):
    """SigLIP tower + mlp2x_gelu projector + Phi, holding a Bunny checkpoint's tensors under Bunny's names."""

    def __init__(self, text_config, vision_config, mm_hidden: int) -> None:
        from transformers import PhiForCausalLM, SiglipVisionModel

        super().__init__()
        h = text_config.hidden_size
        self.vision = SiglipVisionModel(vision_config)
        self.projector = nn.Sequential(nn.Linear(mm_hidden, h), nn.GELU(), nn.Linear(h, h))
        self.lm = PhiForCausalLM(text_config)

    @classmethod
    def from_folder(cls, folder: str | Path) -> tuple[BunnyReference, object, object]:
        """(model, tokenizer, image processor) from a Bunny-Phi folder whose ``mm_vision_tower`` is local."""
        from transformers import AutoTokenizer, PhiConfig, SiglipImageProcessor, SiglipVisionConfig

        folder = Path(folder)
        cfg = PhiConfig.from_json_file(folder / "config.json")
        tower = Path(cfg.mm_vision_tower)
        model = cls(cfg, SiglipVisionConfig.from_pretrained(tower), cfg.mm_hidden_size)
        state = read_state_dict(folder)
        vision = {k[len(VISION_IN):]: v for k, v in state.items() if k.startswith(VISION_IN)}
        pp = "model.mm_projector."
        proj = {k[len(pp):]: v for k, v in state.items() if k.startswith(pp)}
        lm = {k: v for k, v in state.items() if not k.startswith(("model.vision_tower.", pp))}
        model.vision.load_state_dict(vision, strict=True)
        model.projector.load_state_dict(proj, strict=True)
        model.lm.load_state_dict(lm, strict=True)
        tok, processor = AutoTokenizer.from_pretrained(folder), SiglipImageProcessor.from_pretrained(tower)
        return model.float().eval(), tok, processor

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.vision(pixel_values, output_hidden_states=True).hidden_states[-2]
        return self.projector(hidden)

    def embed(self, input_ids: list[int], pixel_values: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings with the image features spliced at the (single) ``-200`` position."""
        table = self.lm.get_input_embeddings()
        if IMAGE_TOKEN_INDEX not in input_ids:
            return table(torch.tensor(input_ids))
        at = input_ids.index(IMAGE_TOKEN_INDEX)
        before, after = torch.tensor(input_ids[:at]), torch.tensor(input_ids[at + 1:])
        feats = self.image_features(pixel_values)[0]
        return torch.cat([table(before), feats, table(after)])

    @torch.no_grad()
    def logits(self, input_ids: list[int], pixel_values: torch.Tensor | None) -> torch.Tensor:
        return self.lm(inputs_embeds=self.embed(input_ids, pixel_values)[None]).logits[0]

    @torch.no_grad()
    def greedy(self, input_ids: list[int], pixel_values: torch.Tensor | None, max_new_tokens: int,
               ) -> list[int]:
        """Greedy decoding by full recomputation (no cache): the plainest possible reference."""
        ids, new = list(input_ids), []
        for _ in range(max_new_tokens):
            nxt = int(self.logits(ids, pixel_values)[-1].argmax())
            ids.append(nxt)
            new.append(nxt)
            if nxt == self.lm.config.eos_token_id:
                break
        return new


def bunny_input_ids(tokenizer, prompt: str) -> list[int]:
    """Bunny's tokenization: chunks around ``<image>`` tokenized separately, joined by ``-200``."""
    chunks = [tokenizer(c, add_special_tokens=False).input_ids for c in prompt.split("<image>")]
    ids = list(chunks[0])
    for chunk in chunks[1:]:
        ids += [IMAGE_TOKEN_INDEX, *chunk]
    return ids


def bunny_pixels(image: Image.Image, image_processor) -> torch.Tensor:
    """Bunny's ``process_images`` with ``image_aspect_ratio: pad``."""
    square = expand_to_square(image.convert("RGB"), mean_fill(image_processor.image_mean))
    return image_processor(square, return_tensors="pt")["pixel_values"]
