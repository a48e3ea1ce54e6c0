"""Hidden-state label embeddings (not the paper's mode): run the backbone and pool one layer's states."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel

from tinyemo_core.encoders.specs import BackboneSpec
from tinyemo_core.encoders.tokenization import HFTokenizer

_BATCH = 32


class HiddenStateEmbedder:
    """``AutoModel`` forward; mean over real tokens (hidden_mean) or the last real token (hidden_last)."""

    def __init__(self, spec: BackboneSpec, model_dir: Path, tokenizer: HFTokenizer) -> None:
        self.spec = spec
        self.model = AutoModel.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.dim = int(self.model.config.hidden_size)
        self.tok = tokenizer.hf
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token or self.tok.unk_token
        self.tok.padding_side = "right"

    def embed(self, texts: list[str]) -> np.ndarray:
        """(N, dim) float32, L2-normalised rows."""
        return np.concatenate([self._batch(texts[i:i + _BATCH]) for i in range(0, len(texts), _BATCH)])

    def _batch(self, texts: list[str]) -> np.ndarray:
        enc = self.tok(list(texts), add_special_tokens=self.spec.add_special_tokens, padding=True,
                       return_tensors="pt")
        with torch.inference_mode():
            out = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                             output_hidden_states=True)
        h = out.hidden_states[self.spec.layer]  # (N, T, dim); index 0 = the embedding output
        mask = enc["attention_mask"].to(h.dtype)
        if self.spec.mode == "hidden_mean":
            pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        else:  # hidden_last: the last real token (right padding)
            pooled = h[torch.arange(h.shape[0]), enc["attention_mask"].sum(1) - 1]
        return torch.nn.functional.normalize(pooled.float(), dim=-1).numpy().astype(np.float32)
