"""In-process transformers backend for vision-language models (CPU or GPU).

Standard models (LLaVA, Qwen2-VL, Idefics, ... anything ``AutoModelForImageTextToText`` loads) are prompted
through their processor's chat template. ``chat_format="bunny"`` follows the BAAI/Bunny model card instead
(``trust_remote_code``: ``USER: <image>\\n... ASSISTANT:`` with image token id -200 and
``model.process_images``); that path needs the real Bunny weights and is not exercised by the test suite.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from pathlib import Path

from PIL import Image

from ..spec import GenerationSpec
from .base import Answer, ChatRequest, GeneratorUnavailable, Turn

BUNNY_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions."
)
BUNNY_IMAGE_TOKEN_ID = -200


def model_dir_fingerprint(path: str | Path, extra: dict | None = None) -> str:
    """Hash of a model folder: small files by content, large weight files by size + head + tail bytes."""
    h = hashlib.sha256(json.dumps(extra or {}, sort_keys=True).encode())
    for f in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        size = f.stat().st_size
        h.update(str(size).encode())
        with f.open("rb") as fh:
            if size <= 16 << 20:
                h.update(fh.read())
            else:
                h.update(fh.read(1 << 20))
                fh.seek(-(1 << 20), 2)
                h.update(fh.read())
    return h.hexdigest()[:16]


class TransformersGenerator:
    """Runs a local vision-language model; requests are served one at a time under a lock."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        trust_remote_code: bool = False,
        chat_format: str = "auto",
        device: str = "auto",
        dtype: str = "auto",
        name: str | None = None,
    ) -> None:
        import torch
        import transformers as tf

        path = Path(model_path)
        if not path.is_dir():
            raise GeneratorUnavailable(
                f"model folder {path} does not exist (pass a local save_pretrained dir)"
            )
        self.chat_format = chat_format
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        torch_dtype = {
            "auto": "auto",
            "float32": torch.float32,
            "bfloat16": torch.bfloat16,
            "float16": torch.float16,
        }[dtype]
        kw = {"trust_remote_code": trust_remote_code, "dtype": torch_dtype}
        if chat_format == "bunny":
            self.tokenizer = tf.AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
            self.model = tf.AutoModelForCausalLM.from_pretrained(path, **kw)
        else:
            self.processor = tf.AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
            self.tokenizer = self.processor.tokenizer
            self.model = tf.AutoModelForImageTextToText.from_pretrained(path, **kw)
        self.model.to(self.device).eval()
        self.name = name or path.name
        self._fingerprint = model_dir_fingerprint(path, {"chat_format": chat_format, "dtype": dtype})
        self._lock = threading.Lock()

    @classmethod
    def from_spec(cls, spec: GenerationSpec) -> TransformersGenerator:
        return cls(
            spec.model,
            trust_remote_code=spec.trust_remote_code,
            chat_format=spec.chat_format,
            device=spec.device,
            dtype=spec.dtype,
        )

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    async def health(self) -> None:
        """The model is loaded in the constructor; nothing can go away later."""

    async def generate(self, request: ChatRequest) -> Answer:
        return await asyncio.to_thread(self.generate_sync, request)

    async def aclose(self) -> None:
        return None

    def _inputs(self, turns: tuple[Turn, ...], image: Image.Image | None) -> dict:
        if self.chat_format == "bunny":
            return self._bunny_inputs(turns, image)
        messages, attached = [], image is None
        for t in turns:
            content: list[dict] = [{"type": "text", "text": t.text}]
            if t.role == "user" and not attached:
                content.insert(0, {"type": "image"})
                attached = True
            messages.append({"role": t.role, "content": content})
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        images = [image] if image is not None else None
        return dict(self.processor(images=images, text=prompt, return_tensors="pt", add_special_tokens=False))

    def _bunny_inputs(self, turns: tuple[Turn, ...], image: Image.Image | None) -> dict:
        import torch

        parts, eos = [BUNNY_SYSTEM], self.tokenizer.eos_token or ""
        for i, t in enumerate(turns):
            if t.role == "user":
                parts.append(f" USER: {'<image>' + chr(10) if i == 0 and image is not None else ''}{t.text}")
            elif t.role == "assistant":
                parts.append(f" ASSISTANT: {t.text}{eos}")
        text = "".join(parts) + " ASSISTANT:"
        chunks = [self.tokenizer(c).input_ids for c in text.split("<image>")]
        ids = chunks[0] + ([BUNNY_IMAGE_TOKEN_ID] + chunks[1] if len(chunks) > 1 else [])
        out = {"input_ids": torch.tensor([ids], dtype=torch.long)}
        if image is not None:
            out["images"] = self.model.process_images([image], self.model.config).to(dtype=self.model.dtype)
        return out

    def generate_sync(self, request: ChatRequest, image: Image.Image | None = None) -> Answer:
        """Generate one answer. ``image`` overrides ``request.image_path`` (the server passes one)."""
        import torch

        if image is None and request.image_path is not None:
            with Image.open(request.image_path) as im:
                image = im.convert("RGB")
        s = request.sampling
        with self._lock, torch.inference_mode():
            inputs = {
                k: (v.to(self.device) if hasattr(v, "to") else v)
                for k, v in self._inputs(request.turns, image).items()
            }
            if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
                inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
            gen_kw: dict = {"max_new_tokens": s.max_tokens, "do_sample": s.temperature > 0}
            if s.temperature > 0:
                torch.manual_seed(s.seed)
                gen_kw.update(temperature=s.temperature, top_p=s.top_p)
            pad = (
                self.tokenizer.pad_token_id
                if self.tokenizer.pad_token_id is not None
                else self.tokenizer.eos_token_id
            )
            out = self.model.generate(**inputs, **gen_kw, pad_token_id=pad, use_cache=True)
        n_prompt = inputs["input_ids"].shape[1]
        new = out[0, n_prompt:].tolist()
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        hit_eos = bool(new) and new[-1] in eos_ids
        text = self.tokenizer.decode(new, skip_special_tokens=True).strip()
        return Answer(
            text=text,
            finish_reason="stop" if hit_eos or len(new) < s.max_tokens else "length",
            prompt_tokens=int(n_prompt),
            completion_tokens=len(new),
        )
