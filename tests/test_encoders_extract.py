"""encode_images: real files on disk, DataLoader workers, bad files reported and never fatal."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from registry_entries import vision_entry  # noqa: E402

from tinyemo_core.encoders.extract import default_load_image, encode_images  # noqa: E402
from tinyemo_core.encoders.vision import load_vision_encoder  # noqa: E402


@pytest.fixture(scope="module")
def encoder():
    return load_vision_encoder(vision_entry("demo-tiny-clip").model_copy(update={"patch_tokens": True}))


@pytest.fixture()
def files(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(7):
        p = tmp_path / f"img_{i}.jpg"
        PIL.Image.fromarray(rng.integers(0, 256, (40 + i, 60, 3), dtype=np.uint8)).save(p, quality=90)
        paths.append(p)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    # bad files in the middle and at the end, plus a missing path
    return [*paths[:3], tmp_path / "empty.jpg", *paths[3:], tmp_path / "missing.jpg", tmp_path / "text.png"]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_encode_images_matches_direct_forward(encoder, files: list[Path], num_workers: int) -> None:
    res = encode_images(encoder, files, batch_size=3, num_workers=num_workers, progress=False)
    assert res.vectors.shape == (7, 64) and res.vectors.dtype == np.float32
    assert res.ok_index.tolist() == [0, 1, 2, 4, 5, 6, 7]
    assert sorted(res.errors) == [3, 8, 9]
    assert "FileNotFoundError" in res.errors[8]
    good = [files[i] for i in res.ok_index]
    direct = encoder.encode(torch.stack([encoder.preprocess(default_load_image(p)) for p in good]))
    np.testing.assert_allclose(res.vectors, direct, atol=1e-5)
    assert res.patches is not None and res.patches.shape == (7, 36, 96)


def test_exif_orientation_applied(encoder, tmp_path: Path) -> None:
    arr = np.zeros((20, 60, 3), np.uint8)
    arr[:, :30] = 255  # left half white
    img = PIL.Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    p = tmp_path / "rot.jpg"
    img.save(p, exif=exif)
    loaded = default_load_image(p)
    assert loaded.size == (20, 60) and loaded.mode == "RGB"  # portrait after the rotation
    arr = np.asarray(loaded)
    assert arr[:25].mean() > 200 and arr[35:].mean() < 50  # left half went to the top


def test_custom_loader_and_all_bad(encoder, files: list[Path]) -> None:
    calls: list[Path] = []

    def loader(p: Path) -> PIL.Image.Image:
        calls.append(p)
        raise ValueError("quarantined by the data layer")

    res = encode_images(encoder, files[:4], batch_size=2, num_workers=0, progress=False, load_image=loader)
    assert res.vectors.shape == (0, 64) and res.ok_index.size == 0 and len(calls) == 4
    assert set(res.errors) == {0, 1, 2, 3} and "quarantined" in res.errors[0]
