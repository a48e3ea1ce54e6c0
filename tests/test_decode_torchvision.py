"""The torchvision decode path (batched decode_jpeg + tensor preprocessing) equals the PIL path within a
stated tolerance on CPU tensors, falls back to PIL for what it does not decode, and encodes end to end."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tinyemo_core.data.images import load_rgb
from tinyemo_core.encoders.extract import TensorPreprocess, decode_batch, encode_images

# Stated tolerance (docs/encoders.md, "Decode"): decoded pixels within 1 grey level (measured: identical,
# libjpeg-turbo in both), model inputs after bicubic antialiased resize + crop + normalise within 0.02 max
# abs = one grey level / std (measured 0.015) and 0.001 mean abs (measured 8e-5).
PIXEL_TOL, INPUT_MAX_TOL, INPUT_MEAN_TOL = 1, 0.02, 0.001


def _photo(w: int, h: int, seed: int) -> Image.Image:
    """Smooth random colour field (photo-like entropy) of size w x h."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 16 + 2, w // 16 + 2, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.BICUBIC)
    noise = rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(img) + noise, 0, 255).astype(np.uint8))


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def clip_preprocess():
    import open_clip

    return open_clip.image_transform(64, is_train=False)


def test_tensor_path_matches_pil_within_tolerance(tmp_path: Path, clip_preprocess) -> None:
    tp = TensorPreprocess.from_transform(clip_preprocess)
    sizes = [(320, 256), (97, 131), (640, 480), (64, 64)]
    datas = [_jpeg(_photo(w, h, k), progressive=k % 2 == 1) for k, (w, h) in enumerate(sizes)]
    paths = []
    for k, d in enumerate(datas):
        paths.append(tmp_path / f"{k}.jpg")
        paths[-1].write_bytes(d)
    ok, tensors, errors = decode_batch(datas)
    assert ok == [0, 1, 2, 3] and not errors
    for path, t in zip(paths, tensors, strict=True):
        pil = torch.from_numpy(np.array(load_rgb(path))).permute(2, 0, 1)
        assert t.shape == pil.shape and t.dtype == torch.uint8
        assert int((t.int() - pil.int()).abs().max()) <= PIXEL_TOL
    ours = tp(tensors)
    ref = torch.stack([clip_preprocess(load_rgb(p)) for p in paths])
    diff = (ours - ref).abs()
    assert ours.shape == ref.shape == (4, 3, 64, 64)
    assert float(diff.max()) <= INPUT_MAX_TOL and float(diff.mean()) <= INPUT_MEAN_TOL


def test_fallbacks_and_failures(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (20, 10), (255, 0, 0, 0))  # fully transparent: the PIL rules give white
    png = io.BytesIO()
    rgba.save(png, "PNG")
    grey = _jpeg(Image.new("L", (12, 12), 77))
    ok, tensors, errors = decode_batch([png.getvalue(), b"not an image", grey, _jpeg(_photo(32, 32, 1))])
    assert ok == [0, 2, 3] and set(errors) == {1} and "not an image" in errors[1]
    assert int(tensors[0].min()) == 255  # composited on white, as the PIL path does
    assert tensors[1].shape == (3, 12, 12) and int(tensors[1][0, 0, 0]) == 77


def test_encode_images_with_torchvision_decode(tmp_path: Path) -> None:
    from tinyemo_core.config import load_flows
    from tinyemo_core.encoders.vision import load_vision_encoder
    from tinyemo_core.registry import encoder_spec

    spec = encoder_spec(load_flows(Path(__file__).resolve().parents[1] / "flows.yaml"), "demo-tiny-clip")
    paths = []
    for k in range(5):
        paths.append(tmp_path / f"{k}.jpg")
        paths[-1].write_bytes(_jpeg(_photo(48 + 8 * k, 40, k)))
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff truncated")
    paths.insert(2, tmp_path / "bad.jpg")
    pil = encode_images(load_vision_encoder(spec), paths, batch_size=4, num_workers=0, progress=False,
                        load_image=load_rgb)
    tv_encoder = load_vision_encoder(spec.model_copy(update={"decode": "torchvision"}))
    tv = encode_images(tv_encoder, paths, batch_size=4, num_workers=0, progress=False)
    assert tv.ok_index.tolist() == pil.ok_index.tolist() == [0, 1, 3, 4, 5] and set(tv.errors) == {2}
    cos = (tv.vectors * pil.vectors).sum(1) / np.linalg.norm(tv.vectors, axis=1) / np.linalg.norm(
        pil.vectors, axis=1)
    assert cos.min() > 0.99, cos
