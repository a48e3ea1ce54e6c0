"""Vision encoders built offline from tiny configs: shapes, determinism, preprocessing, fingerprints."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from registry_entries import vision_entry  # noqa: E402

from tinyemo_core.encoders.fingerprints import vision_fingerprint  # noqa: E402
from tinyemo_core.encoders.specs import VisionEncoderSpec  # noqa: E402
from tinyemo_core.encoders.vision import load_vision_encoder  # noqa: E402


def _image(seed: int, size: tuple[int, int] = (90, 70)) -> PIL.Image.Image:
    rng = np.random.default_rng(seed)
    return PIL.Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def tiny_clip():
    return load_vision_encoder(vision_entry("demo-tiny-clip"))


def test_tiny_open_clip_encodes_real_images(tiny_clip) -> None:
    imgs = [_image(i) for i in range(3)]
    batch = torch.stack([tiny_clip.preprocess(im) for im in imgs])
    assert batch.shape == (3, 3, 48, 48) and tiny_clip.image_size == 48
    out = tiny_clip.encode(batch)
    assert out.shape == (3, 64) and out.dtype == np.float32 and tiny_clip.dim == 64
    assert not np.allclose(out[0], out[1])  # different images, different vectors
    assert not np.allclose(np.linalg.norm(out, axis=1), 1.0)  # paper: encode_image is NOT normalised


def test_tiny_open_clip_deterministic_across_loads(tiny_clip) -> None:
    again = load_vision_encoder(vision_entry("demo-tiny-clip"))
    batch = torch.stack([tiny_clip.preprocess(_image(7))])
    np.testing.assert_array_equal(tiny_clip.encode(batch), again.encode(batch))
    assert tiny_clip.fingerprint == again.fingerprint
    other_seed = load_vision_encoder(vision_entry("demo-tiny-clip").model_copy(update={"seed": 1}))
    assert not np.allclose(other_seed.encode(batch), tiny_clip.encode(batch))


def test_open_clip_preprocess_is_clip_bicubic_center_crop(tiny_clip) -> None:
    import open_clip
    from torchvision.transforms import functional as F

    img = _image(3, (120, 60))
    expected = F.center_crop(F.resize(img, 48, interpolation=F.InterpolationMode.BICUBIC), 48)
    expected = F.normalize(F.to_tensor(expected), open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)
    torch.testing.assert_close(tiny_clip.preprocess(img), expected, atol=1e-5, rtol=0)


def test_open_clip_patch_tokens_match_penultimate_block(tiny_clip) -> None:
    batch = torch.stack([tiny_clip.preprocess(_image(i)) for i in range(2)])
    out = tiny_clip.encode_batch(batch, patches=True)
    assert out.patches is not None and out.patches.shape == (2, (48 // 8) ** 2, 96)  # CLS dropped
    np.testing.assert_allclose(out.pooled, tiny_clip.encode(batch), atol=1e-5)
    seen: list[torch.Tensor] = []
    hook = tiny_clip.visual.transformer.resblocks[-2].register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        tiny_clip.encode(batch)
    finally:
        hook.remove()
    np.testing.assert_allclose(out.patches, seen[0][:, 1:].numpy(), atol=1e-5)


def test_open_clip_bfloat16_autocast_close_to_fp32(tiny_clip) -> None:
    bf = load_vision_encoder(vision_entry("demo-tiny-clip").model_copy(update={"dtype": "bfloat16"}))
    batch = torch.stack([tiny_clip.preprocess(_image(i)) for i in range(2)])
    a, b = tiny_clip.encode(batch), bf.encode(batch)
    assert b.dtype == np.float32
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.98 and not np.array_equal(a, b)


def test_local_weights_file_loads_and_enters_fingerprint(tiny_clip, tmp_path: Path) -> None:
    import open_clip

    torch.manual_seed(42)
    model = open_clip.create_model("tinyemo-tiny-clip", pretrained=None)
    ckpt = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), ckpt)
    spec = vision_entry("demo-tiny-clip").model_copy(update={"pretrained": str(ckpt)})
    enc = load_vision_encoder(spec)
    batch = torch.stack([enc.preprocess(_image(1))])
    np.testing.assert_allclose(enc.encode(batch), model.encode_image(batch).detach().numpy(), atol=1e-5)
    fp = vision_fingerprint(spec)
    assert fp != tiny_clip.fingerprint
    torch.save({k: v + 1 for k, v in model.state_dict().items()}, ckpt)  # same path, new content
    assert vision_fingerprint(spec) != fp


def test_fingerprint_tracks_what_matters_only() -> None:
    base = vision_entry("clip-vit-l-14")
    fp = vision_fingerprint(base)
    same = [{"batch_size": 7}, {"num_workers": 3}, {"device": "cpu"}, {"patch_tokens": True}]
    for upd in same:
        assert vision_fingerprint(base.model_copy(update=upd)) == fp, upd
    differ = [{"model": "ViT-B-16"}, {"pretrained": "laion2b_s32b_b82k"}, {"dtype": "bfloat16"},
              {"store_dtype": "float32"}, {"pretrained": None}, {"kind": "hf"}]
    fps = {vision_fingerprint(base.model_copy(update=upd)) for upd in differ}
    assert len(fps) == len(differ) and fp not in fps
    assert vision_fingerprint(vision_entry("clip-vit-l-14-336")) != fp  # image size 336 vs 224


def test_config_file_content_enters_fingerprint(tmp_path: Path) -> None:
    src = Path(vision_entry("demo-tiny-clip").model_copy().model_dump()["config_file"].split(":", 1)[1])
    cfg_dir = Path(__file__).parents[1] / "tinyemo_core" / "encoders" / "configs"
    text = (cfg_dir / src).read_text()
    a = tmp_path / "a" / "mytiny.json"
    a.parent.mkdir()
    a.write_text(text)
    spec = VisionEncoderSpec(model="mytiny", config_file=str(a))
    fp = vision_fingerprint(spec)
    a.write_text(text.replace('"layers": 3', '"layers": 2'))
    assert vision_fingerprint(spec) != fp


def test_bad_specs_name_their_problem() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="batch_size"):
        VisionEncoderSpec(model="ViT-B-16", batch_size=0)
    with pytest.raises(ValidationError, match="extra"):
        VisionEncoderSpec(model="ViT-B-16", colour="blue")
    with pytest.raises(ValueError, match="pretrained tag"):
        vision_fingerprint(VisionEncoderSpec(model="ViT-B-16", pretrained="no-such-tag"))
    with pytest.raises(ValueError, match="unknown open_clip model"):
        load_vision_encoder(VisionEncoderSpec(model="NoSuchNet"))


def _save_hf(tmp_path: Path, kind: str) -> Path:
    import transformers as tf

    torch.manual_seed(0)
    common = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                  image_size=32, patch_size=8)
    if kind == "dinov2":
        model = tf.Dinov2WithRegistersModel(tf.Dinov2WithRegistersConfig(num_register_tokens=4, **common))
        # the real DINOv2 processor, scaled down: resize shortest edge, centre crop, ImageNet mean/std
        proc = tf.BitImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32},
                                    image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    else:
        model = tf.SiglipVisionModel(tf.SiglipVisionConfig(**common))
        proc = tf.SiglipImageProcessor(size={"height": 32, "width": 32})
    out = tmp_path / kind
    model.save_pretrained(out)
    proc.save_pretrained(out)
    return out


@pytest.mark.parametrize("kind", ["dinov2", "siglip"])
def test_hf_vision_models_from_local_dir(tmp_path: Path, kind: str) -> None:
    import transformers as tf

    path = _save_hf(tmp_path, kind)
    enc = load_vision_encoder(VisionEncoderSpec(kind="hf", model=str(path)))
    batch = torch.stack([enc.preprocess(_image(i)) for i in range(2)])
    assert batch.shape == (2, 3, 32, 32) and enc.dim == 32
    out = enc.encode_batch(batch, patches=True)
    assert out.pooled.shape == (2, 32) and out.patches.shape == (2, 16, 32)  # prefix/register tokens dropped
    ref = tf.AutoModel.from_pretrained(path).eval()
    with torch.no_grad():
        full = ref(pixel_values=batch, output_hidden_states=True)
    expected = full.last_hidden_state[:, 0] if kind == "dinov2" else full.pooler_output
    if kind == "dinov2":  # CLS after the final layernorm == pooler_output
        np.testing.assert_allclose(expected.numpy(), full.pooler_output.numpy(), atol=1e-6)
    np.testing.assert_allclose(out.pooled, full.pooler_output.numpy(), atol=1e-5)
    skip = 5 if kind == "dinov2" else 0
    np.testing.assert_allclose(out.patches, full.hidden_states[-2][:, skip:].numpy(), atol=1e-5)
    fp = enc.fingerprint
    cfg_path = path / "preprocessor_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["image_std"] = [0.3, 0.3, 0.3]
    cfg_path.write_text(json.dumps(cfg))
    assert vision_fingerprint(enc.spec) != fp  # preprocessing is part of the identity
