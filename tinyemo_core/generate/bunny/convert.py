"""Convert a Bunny-Phi checkpoint (Bunny-v1.0-3B: SigLIP-so400m + mlp2x_gelu + Phi-2) to a transformers
LLaVA folder that ``LlavaForConditionalGeneration`` and vLLM's LLaVA implementation load natively.

Bunny reads SigLIP's ``hidden_states[-2]`` (all patches; SigLIP has no CLS), maps it with a 2-layer GELU
MLP and splices it at the image token of a Phi prompt: LLaVA-1.5 with ``vision_feature_layer=-2`` and
``vision_feature_select_strategy="full"``. What differs, and how it is handled:

- Bunny's ``BunnyPhiForCausalLM`` head is bias-free, so the release has no ``lm_head.bias``; vLLM's Phi head
  has a bias, so a zero bias is written as ``language_model.lm_head.bias`` (a checkpoint that has one keeps
  it). transformers' LLaVA head has none: :func:`load_converted` restores it for transformers.
- Every field of the source ``config.json`` is placed in the converted config (``text_config``, including
  transformers 5's nested ``rope_parameters``: ``partial_rotary_factor``, ``rope_theta``; ``vision_config``
  from the tower), or is a Bunny field with a named home (:data:`BUNNY_FIELDS`), a training flag
  (:data:`TRAINING_ONLY`) or bookkeeping; the written ``config.json`` is read back and compared field by
  field, and any field that cannot be placed stops the conversion with its name.
- Bunny pads to a square with the mean colour (``image_aspect_ratio: pad``); a LLaVA processor does not:
  pad before sending (``generation.pad_to_square``; :func:`..image.expand_to_square`).
- The SigLIP pooling head is dropped (``vision_use_head: false``): LLaVA never reads it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from ...fingerprint import stable_hash
from ...store.atomic import read_json, write_json
from .image import BUNNY_CHAT_TEMPLATE, mean_fill
from .weights import (
    VISION_IN,
    BunnyConversionError,
    account,
    expected_shapes,
    read_state_dict,
    rename,
    tower_state_from_siglip,
)

CONVERTER_VERSION = "1"
MARKER = "tinyemo_conversion.json"
IMAGE_TOKEN = "<image>"
#: Bias of lm_head rows added for new tokens: never sampled (Phi logits are O(10)), finite in fp16/bf16.
NEW_ROW_BIAS = -1.0e4
#: Vision config of google/siglip-so400m-patch14-384 (its config.json), used when the hub is unreachable.
SO400M = {
    "hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16,
    "image_size": 384, "patch_size": 14, "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6,
}
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken"]
#: config.json fields that describe the file, not the network.
BOOKKEEPING = frozenset({"_name_or_path", "architectures", "model_type", "auto_map", "transformers_version",
                         "torch_dtype", "dtype"})
#: Bunny's multimodal fields and where the converted folder keeps each.
BUNNY_FIELDS = {
    "mm_vision_tower": "vision_config (the tower's own config.json)",
    "mm_hidden_size": "multi_modal_projector.linear_1 input width (= vision_config.hidden_size, checked)",
    "mm_projector_type": "multi_modal_projector (mlp2x_gelu only)",
    "use_mm_proj": "multi_modal_projector",
    "image_aspect_ratio": "tinyemo_conversion.json image_aspect_ratio + pad_color (clients pad)",
    "tokenizer_model_max_length": "tokenizer model_max_length",
    "tokenizer_padding_side": "tokenizer padding_side",
}
#: Training flags Bunny saves with the model; an inference folder has no place for them (marker lists them).
TRAINING_ONLY = frozenset({"mm_projector_lr", "freeze_mm_mlp_adapter", "tune_mm_mlp_adapter",
                           "unfreeze_vision_tower", "continuous_training", "mm_vision_tower_lr"})
#: Vision fields changed on purpose, with the reason.
VISION_CHANGED = {
    "num_hidden_layers": "the layers the checkpoint holds (see vision_feature_layer)",
    "vision_use_head": "false: LLaVA reads hidden states, never the pooling head",
}
_MISSING = object()


def text_fields(cfg: dict) -> dict:
    """The fields of a Bunny-Phi config.json that describe its Phi language model."""
    return {k: v for k, v in cfg.items() if k not in BOOKKEEPING | set(BUNNY_FIELDS) | TRAINING_ONLY}


def _lookup(placed: dict, key: str):
    """A field's value in a config dict, also inside transformers 5's ``rope_parameters``."""
    rope = placed.get("rope_parameters") or {}
    if key in placed:
        return placed[key]
    if key in rope:
        return rope[key]
    if key == "rope_scaling" and rope.get("rope_type", "default") == "default":
        return None  # no scaling: transformers 5 keeps only rope_parameters
    return _MISSING


def check_placed(source: dict, placed: dict, where: str, changed: dict[str, str] | None = None) -> int:
    """Every ``source`` field has the same value in ``placed`` (or is in ``changed``); return how many
    were compared. Raises :class:`BunnyConversionError` naming the first field that cannot be placed."""
    n = 0
    for key, want in source.items():
        if key in (changed or {}) or key in BOOKKEEPING:
            continue
        got = _lookup(placed, key)
        same = got == want or (isinstance(got, float | int) and isinstance(want, float | int)
                               and abs(float(got) - float(want)) <= 1e-12 * max(1.0, abs(float(want))))
        if got is _MISSING or not same:
            raise BunnyConversionError(
                f"config.json field {key!r} = {want!r} cannot be placed in the converted {where} (it reads "
                f"{'nothing' if got is _MISSING else repr(got)}); this converter does not know that field: "
                "report it with the checkpoint's config.json"
            )
        n += 1
    return n


def _phi_text_config(cfg: dict):
    """PhiConfig from the source's text fields; unknown fields are refused, not carried silently."""
    from transformers import PhiConfig

    fields = text_fields(cfg)
    default = PhiConfig().to_dict()
    known = set(default) | set(default.get("rope_parameters") or {}) | {"rope_scaling", "rope_theta",
                                                                        "partial_rotary_factor"}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise BunnyConversionError(
            f"config.json field {unknown[0]!r} is neither a Phi architecture field of transformers "
            f"PhiConfig nor a known Bunny field ({', '.join(sorted(BUNNY_FIELDS))}; training flags "
            f"{', '.join(sorted(TRAINING_ONLY))}): the converter cannot place it"
        )
    # rope_scaling: null is transformers 4's "no scaling"; transformers 5 reads rope_parameters instead
    text_config = PhiConfig(**{k: v for k, v in fields.items() if not (k == "rope_scaling" and v is None)})
    check_placed(fields, text_config.to_dict(), "text_config")
    return text_config, fields


def resolve_source(src: str | os.PathLike, *, patterns: list[str] | None = None) -> Path:
    """A local folder as is; otherwise a hub id fetched with ``huggingface_hub.snapshot_download``."""
    path = Path(src).expanduser()
    if path.is_dir():
        return path
    text = str(src)
    if path.exists() or text.startswith(("/", ".", "~")) or text.count("/") != 1:
        raise BunnyConversionError(f"{text!r} is neither a model folder nor a hub id (owner/name)")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(text, allow_patterns=patterns or HUB_PATTERNS))
    except Exception as exc:  # noqa: BLE001 - offline, unknown repo, auth: one actionable message
        raise BunnyConversionError(
            f"{text!r} is not a local folder and could not be fetched from the hub ({type(exc).__name__}: "
            f"{exc}). With network: unset HF_HUB_OFFLINE; offline: `huggingface-cli download {text} "
            "--local-dir DIR` on a connected machine and pass DIR"
        ) from exc


def _bunny_config(folder: Path) -> dict:
    cfg = read_json(folder / "config.json")
    if not isinstance(cfg, dict):
        raise BunnyConversionError(f"{folder}/config.json is missing or not JSON")
    if cfg.get("model_type") != "bunny-phi":
        raise BunnyConversionError(
            f"config.json model_type is {cfg.get('model_type')!r}; only Bunny-Phi ('bunny-phi', e.g. "
            "BAAI/Bunny-v1_0-3B) is supported"
        )
    if cfg.get("mm_projector_type", "mlp2x_gelu") != "mlp2x_gelu":
        raise BunnyConversionError(
            f"config.json mm_projector_type is {cfg['mm_projector_type']!r}; LLaVA's projector is mlp2x_gelu"
        )
    for field in ("mm_vision_tower", "mm_hidden_size", "hidden_size", "vocab_size"):
        if field not in cfg:
            raise BunnyConversionError(f"config.json has no {field!r} field")
    return cfg


def _vision(cfg: dict, tower: str | None) -> tuple[dict, dict, Path | None]:
    """(SigLIP vision config dict, image-processor dict, tower folder or None when only built-in values)."""
    name = tower or cfg["mm_vision_tower"]
    try:
        folder: Path | None = resolve_source(name, patterns=["*.json"])
    except BunnyConversionError:
        if not str(name).startswith("google/siglip-so400m-patch14-384"):
            raise
        folder = None
    if folder is None:
        vcfg = dict(SO400M)
        proc = {"size": {"height": 384, "width": 384}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    else:
        raw = read_json(folder / "config.json") or {}
        vcfg = raw.get("vision_config", raw) if raw.get("model_type") == "siglip" else raw
        proc = read_json(folder / "preprocessor_config.json") or {}
        if not vcfg:
            raise BunnyConversionError(f"vision tower {name!r}: {folder}/config.json is missing")
    return vcfg, proc, folder


def _fingerprint(folder: Path, cfg: dict, tower: str | None, dtype: str | None) -> str:
    files = sorted((p.name, p.stat().st_size) for p in folder.iterdir() if p.is_file())
    return stable_hash("convert-bunny", CONVERTER_VERSION, cfg, files, tower, dtype)


def convert_bunny(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    vision_tower: str | None = None,
    dtype: str | None = None,
    overwrite: bool = False,
    on_progress: Callable[[dict], None] | None = None,
) -> dict:
    """Write the LLaVA folder ``dst`` for the Bunny-Phi checkpoint ``src`` (folder or hub id); idempotent.

    ``vision_tower``: SigLIP folder/hub id overriding ``mm_vision_tower`` (config + processor, and the
    tower weights when ``src`` has none). ``dtype``: cast floating tensors (``bfloat16``, ``float16``,
    ``float32``); None keeps the source's. Returns a JSON-able descriptor (also in ``dst/{MARKER}``).
    """
    import torch
    from transformers import SiglipVisionConfig

    say = on_progress or (lambda _e: None)
    folder, out = resolve_source(src), Path(dst)
    cfg = _bunny_config(folder)
    fp = _fingerprint(folder, cfg, vision_tower, dtype)
    done = read_json(out / MARKER)
    if isinstance(done, dict) and done.get("fingerprint") == fp:
        return done
    if out.exists() and any(out.iterdir()) and not (overwrite and isinstance(done, dict)):
        raise BunnyConversionError(
            f"{out} exists and is not this conversion's output; pass overwrite=True (only replaces an "
            "earlier conversion) or choose an empty folder"
        )
    say({"stage": "read", "source": str(folder)})
    state = read_state_dict(folder)
    vcfg, proc, tower_dir = _vision(cfg, vision_tower)
    if not any(k.startswith(VISION_IN) for k in state):
        if tower_dir is None:
            raise BunnyConversionError(
                f"{folder} holds no vision tower tensors ({VISION_IN}*) and the tower "
                f"{vision_tower or cfg['mm_vision_tower']!r} is unreachable; pass vision_tower=LOCAL_DIR"
            )
        state |= tower_state_from_siglip(read_state_dict(tower_dir))

    n_cfg = int(vcfg.get("num_hidden_layers", 0))
    prefix = VISION_IN + "encoder.layers."
    layers = {int(k[len(prefix):].split(".")[0]) for k in state if k.startswith(prefix)}
    n_ckpt = max(layers) + 1 if layers else 0
    if n_ckpt < n_cfg - 1 or n_ckpt > n_cfg:
        raise BunnyConversionError(
            f"the checkpoint has {n_ckpt} SigLIP layers; Bunny reads hidden_states[-2] of the "
            f"{n_cfg}-layer tower, so {n_cfg - 1} or {n_cfg} are needed"
        )
    known_v = set(SiglipVisionConfig().to_dict())
    vision_config = SiglipVisionConfig(
        **{k: v for k, v in vcfg.items() if k in known_v and k not in ("model_type", "transformers_version")},
    )
    vision_config.num_hidden_layers, vision_config.vision_use_head = n_ckpt, False
    # Bunny's feature = hidden_states[n_cfg - 1] of the full tower (index 0 = embeddings).
    feature_layer = (n_cfg - 1) - (n_ckpt + 1)
    check_placed({k: v for k, v in vcfg.items() if k not in ("model_type", "transformers_version")},
                 vision_config.to_dict(), "vision_config", VISION_CHANGED)
    text_config, t_fields = _phi_text_config(cfg)
    if int(cfg["mm_hidden_size"]) != vision_config.hidden_size:
        raise BunnyConversionError(
            f"config.json mm_hidden_size {cfg['mm_hidden_size']} differs from the tower's hidden_size "
            f"{vision_config.hidden_size}: the projector would not fit the tower"
        )
    if cfg.get("tie_word_embeddings"):
        raise BunnyConversionError("config.json tie_word_embeddings is true; Bunny-Phi's head is untied")

    head_bias = "from the checkpoint"
    if "lm_head.bias" not in state and "lm_head.weight" in state:  # Bunny's own head: nn.Linear(bias=False)
        w = state["lm_head.weight"]
        state["lm_head.bias"] = torch.zeros(w.shape[0], dtype=w.dtype)
        head_bias = "zeros (the checkpoint has none: BunnyPhiForCausalLM's head is bias-free)"

    say({"stage": "account", "tensors": len(state)})
    account(state, expected_shapes(text_config, vision_config, int(cfg["mm_hidden_size"])))
    dropped = sorted(k for k in state if rename(k) is None)
    out_state = {rename(k): v for k, v in state.items() if rename(k) is not None}

    from transformers import AddedToken, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    if IMAGE_TOKEN not in tok.get_vocab():
        tok.add_special_tokens({"additional_special_tokens": [AddedToken(IMAGE_TOKEN, normalized=False)]})
    image_id = tok.convert_tokens_to_ids(IMAGE_TOKEN)
    rows = out_state["language_model.model.embed_tokens.weight"].shape[0]
    if len(tok) > rows:  # grow: new embedding rows = mean row; new lm_head rows never win
        extra = len(tok) - rows
        key = "language_model.model.embed_tokens.weight"
        out_state[key] = torch.cat([out_state[key], out_state[key].mean(0).expand(extra, -1)])
        w = out_state["language_model.lm_head.weight"]
        out_state["language_model.lm_head.weight"] = torch.cat([w, w.new_zeros(extra, w.shape[1])])
        b = out_state["language_model.lm_head.bias"]
        out_state["language_model.lm_head.bias"] = torch.cat([b, b.new_full((extra,), NEW_ROW_BIAS)])
        rows = len(tok)
    text_config.vocab_size = rows
    text_config.architectures = ["PhiForCausalLM"]
    tok.model_max_length = int(cfg.get("tokenizer_model_max_length") or tok.model_max_length)
    tok.padding_side = cfg.get("tokenizer_padding_side") or tok.padding_side
    if dtype is not None:
        target = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[dtype]
        out_state = {k: v.to(target) if v.is_floating_point() else v for k, v in out_state.items()}
    info = {"source": str(src), "resolved": str(folder), "dropped": dropped, "dtype": dtype,
            "image_aspect_ratio": cfg.get("image_aspect_ratio"), "vision_tower": str(tower_dir or "built-in"),
            "lm_head_bias": head_bias, "source_vocab_rows": state_rows(state),
            "tokenizer_length": len(tok),
            "config_fields": {"bunny": {k: v for k, v in BUNNY_FIELDS.items() if k in cfg},
                              "training_only": sorted(TRAINING_ONLY & set(cfg)),
                              "changed": {"vocab_size": "rows of the converted embedding", **VISION_CHANGED}}}
    vision_source = {k: v for k, v in vcfg.items() if k not in ("model_type", "transformers_version")}
    _write(out, fp, out_state, tok, text_config, vision_config, feature_layer, proc, image_id, say, info,
           lambda written: (check_placed(t_fields, written["text_config"], "text_config",
                                         {"vocab_size": "rows"}),
                            check_placed(vision_source, written["vision_config"], "vision_config",
                                         VISION_CHANGED)))
    return read_json(out / MARKER)


def state_rows(state: dict) -> int:
    """Embedding rows of a Bunny-Phi state dict."""
    return int(state["model.embed_tokens.weight"].shape[0])


def _write(out: Path, fp: str, state: dict, tok, text_config, vision_config, feature_layer: int, proc: dict,
           image_id: int, say: Callable[[dict], None], info: dict, verify: Callable[[dict], object]) -> None:
    from huggingface_hub import save_torch_state_dict
    from transformers import LlavaConfig, LlavaProcessor, SiglipImageProcessor

    size = vision_config.image_size
    patch = vision_config.patch_size
    config = LlavaConfig(
        vision_config=vision_config.to_dict(), text_config=text_config.to_dict(),
        image_token_index=image_id, vision_feature_layer=feature_layer, vision_feature_select_strategy="full",
        projector_hidden_act="gelu", multimodal_projector_bias=True, image_seq_length=(size // patch) ** 2,
        tie_word_embeddings=False,
    )
    config.architectures = ["LlavaForConditionalGeneration"]
    known_p = set(SiglipImageProcessor().to_dict())
    image_processor = SiglipImageProcessor(**{k: v for k, v in proc.items() if k in known_p and
                                              k not in ("image_processor_type", "processor_class")})
    image_processor.size = {"height": size, "width": size}
    tok.chat_template = BUNNY_CHAT_TEMPLATE
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tok, patch_size=patch,
        vision_feature_select_strategy="full", chat_template=BUNNY_CHAT_TEMPLATE, image_token=IMAGE_TOKEN,
        num_additional_image_tokens=0,
    )
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    say({"stage": "write", "tensors": len(state), "path": str(out)})
    save_torch_state_dict(state, tmp, max_shard_size="4GB")
    config.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    (tmp / "chat_template.jinja").write_text(BUNNY_CHAT_TEMPLATE)
    try:
        counted = verify(read_json(tmp / "config.json"))  # what vLLM/transformers will read, field by field
    except BunnyConversionError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    info["config_fields"]["compared"] = {"text_config": counted[0], "vision_config": counted[1]}
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    write_json(out / MARKER, {
        "path": str(out), "fingerprint": fp, "converter_version": CONVERTER_VERSION, "tensors": len(state),
        "image_token_index": image_id, "vocab_size": text_config.vocab_size,
        "vision_feature_layer": feature_layer, "vision_layers": vision_config.num_hidden_layers,
        "image_size": size, "patch_size": patch, "image_seq_length": (size // patch) ** 2,
        "pad_color": list(mean_fill(image_processor.image_mean)), **info,
    })


def load_converted(path: str | os.PathLike, *, dtype=None):
    """``LlavaForConditionalGeneration`` on a converted folder with Phi's ``lm_head`` bias restored
    (transformers' LLaVA head is bias-free and drops ``language_model.lm_head.bias`` on load)."""
    import torch
    from safetensors import safe_open
    from transformers import LlavaForConditionalGeneration

    path = Path(path)
    model = LlavaForConditionalGeneration.from_pretrained(path, dtype=dtype or torch.float32).eval()
    index = read_json(path / "model.safetensors.index.json")
    shard = index["weight_map"]["language_model.lm_head.bias"] if index else "model.safetensors"
    with safe_open(path / shard, framework="pt") as fh:
        bias = fh.get_tensor("language_model.lm_head.bias")
    old = model.lm_head
    head = torch.nn.Linear(old.in_features, old.out_features, bias=True, dtype=old.weight.dtype)
    with torch.no_grad():
        head.weight.copy_(old.weight)
        head.bias.copy_(bias.to(old.weight.dtype))
    model.lm_head = head
    return model
