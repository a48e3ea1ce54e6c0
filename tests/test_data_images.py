"""Every bad-input case of issue 3 gets a defined outcome: decoded correctly or quarantined with a reason."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import image_bytes, png_with_size, write_image
from PIL import Image

from tinyemo_core.data.images import ImageDecodeError, image_id_of, inspect_image, load_rgb


def _save(img: Image.Image, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def _pixel(img: Image.Image, xy: tuple[int, int] = (2, 2)) -> np.ndarray:
    return np.asarray(img, dtype=int)[xy[1], xy[0]]


def test_ok_image_has_content_id_and_size(tmp_path: Path) -> None:
    path = write_image(tmp_path / "a.jpg", size=(16, 12))
    check = inspect_image(path, tmp_path)
    assert (check.status, check.error, check.width, check.height) == ("ok", None, 16, 12)
    assert check.image_id == image_id_of(path.read_bytes()) and len(check.image_id) == 32
    assert inspect_image(write_image(tmp_path / "b.jpg", seed=1), tmp_path).image_id != check.image_id


@pytest.mark.parametrize(
    ("name", "payload", "reason"),
    [
        ("empty.jpg", b"", "empty file"),
        ("text.jpg", b"this is not an image at all\n" * 4, "not an image"),
        ("bomb.png", png_with_size(100_000, 100_000), "decompression bomb"),
    ],
)
def test_bad_bytes_are_quarantined_with_reason(
    tmp_path: Path, name: str, payload: bytes, reason: str
) -> None:
    (tmp_path / name).write_bytes(payload)
    check = inspect_image(tmp_path / name, tmp_path)
    assert check.status == "quarantined" and check.image_id is None and check.width is None
    assert check.error.startswith(reason), check.error


def test_truncated_jpeg_is_caught_by_full_decode(tmp_path: Path) -> None:
    data = image_bytes(size=(64, 64), seed=3)
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    check = inspect_image(tmp_path / "cut.jpg", tmp_path)
    assert check.status == "quarantined" and check.error.startswith("truncated or corrupt image")
    with pytest.raises(ImageDecodeError) as info:
        load_rgb(tmp_path / "cut.jpg")
    assert info.value.reason == "truncated or corrupt image"


def test_max_pixels_limit_names_the_size(tmp_path: Path) -> None:
    path = write_image(tmp_path / "a.png", size=(40, 30))
    check = inspect_image(path, tmp_path, max_pixels=1000)
    assert check.status == "quarantined"
    assert "decompression bomb" in check.error and "40x30 = 1200 pixels" in check.error
    assert inspect_image(path, tmp_path, max_pixels=1200).status == "ok"


def test_missing_directory_and_outside_root(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    assert inspect_image(root / "nope.jpg", root).error.startswith("missing file")
    (root / "dir.jpg").mkdir()
    assert inspect_image(root / "dir.jpg", root).error.startswith("not a regular file")
    outside = write_image(tmp_path / "outside.jpg")
    (root / "link.jpg").symlink_to(outside)
    for path in (root / "link.jpg", root / ".." / "outside.jpg"):
        check = inspect_image(path, root)
        assert check.status == "quarantined" and check.error.startswith("outside dataset root"), path
    inside = write_image(root / "real.jpg")
    (root / "inner_link.jpg").symlink_to(inside)
    assert inspect_image(root / "inner_link.jpg", root).status == "ok"


def test_unicode_file_name(tmp_path: Path) -> None:
    path = write_image(tmp_path / "喜び" / "café 😀.png")
    check = inspect_image(path, tmp_path)
    assert check.status == "ok" and check.width == 16


def test_exif_rotation_swaps_width_and_height(tmp_path: Path) -> None:
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # left half red
    arr[:, 20:] = (0, 0, 255)  # right half blue
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = _save(img, tmp_path / "rot.jpg", exif=exif, quality=95)
    check = inspect_image(path, tmp_path)
    assert (check.width, check.height) == (20, 40)
    out = load_rgb(path)
    assert out.size == (20, 40)
    top, bottom = _pixel(out, (10, 5)), _pixel(out, (10, 35))
    assert top[0] > 200 and top[2] < 60  # the stored left edge (red) is displayed on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_cmyk_decodes_to_rgb(tmp_path: Path) -> None:
    path = _save(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    out = load_rgb(path)
    assert out.mode == "RGB"
    np.testing.assert_allclose(_pixel(out), (255, 0, 0), atol=12)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path: Path) -> None:
    arr = np.full((8, 8), 32896, dtype=np.uint16)  # 50% grey in 16 bit
    arr[0, 0] = 65535
    path = _save(Image.fromarray(arr), tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")
    out = load_rgb(path)
    np.testing.assert_array_equal(_pixel(out), (128, 128, 128))  # Pillow's convert would clip to 255
    np.testing.assert_array_equal(_pixel(out, (0, 0)), (255, 255, 255))


def test_palette_with_transparency_is_composited_on_white(tmp_path: Path) -> None:
    img = Image.new("P", (8, 8), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)  # index 0 black (transparent), index 1 red
    img.paste(1, (4, 0, 8, 8))
    path = _save(img, tmp_path / "pal.png", transparency=0)
    out = load_rgb(path)
    np.testing.assert_array_equal(_pixel(out, (1, 1)), (255, 255, 255))
    np.testing.assert_array_equal(_pixel(out, (6, 1)), (255, 0, 0))


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_on_white(tmp_path: Path, mode: str) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 40
    rgba[:, 4:, 3] = 255  # right half opaque dark grey, left half fully transparent
    img = Image.fromarray(rgba, "RGBA").convert(mode)
    out = load_rgb(_save(img, tmp_path / f"{mode}.png"))
    np.testing.assert_array_equal(_pixel(out, (1, 1)), (255, 255, 255))
    np.testing.assert_array_equal(_pixel(out, (6, 1)), (40, 40, 40))


def test_animated_gif_uses_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert getattr(Image.open(path), "n_frames", 1) == 2
    out = load_rgb(path)
    np.testing.assert_allclose(_pixel(out), (255, 0, 0), atol=5)


def test_decode_is_independent_of_path(tmp_path: Path) -> None:
    data = image_bytes(seed=5)
    (tmp_path / "x.jpg").write_bytes(data)
    assert load_rgb(tmp_path / "x.jpg").tobytes() == Image.open(io.BytesIO(data)).convert("RGB").tobytes()


_AS_NOBODY = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from tinyemo_core.data.images import inspect_image
    os.setgid(65534)
    os.setuid(65534)  # 'nobody': from here on, file permissions apply
    print(inspect_image(Path(sys.argv[2]) / "secret.jpg", Path(sys.argv[2])).error)
    """
)


def test_unreadable_permissions(tmp_path: Path) -> None:
    """chmod 000 does not stop root, so as root the check runs in a subprocess that drops to uid 65534."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="tinyemo-perm-"))
    try:
        os.chmod(folder, 0o755)
        write_image(folder / "secret.jpg").chmod(0o000)
        if os.geteuid() != 0:
            error = inspect_image(folder / "secret.jpg", folder).error
        else:
            repo = str(Path(__file__).resolve().parents[1])
            proc = subprocess.run(
                [sys.executable, "-c", _AS_NOBODY, repo, str(folder)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if proc.returncode != 0:
                pytest.skip(f"cannot drop root privileges here: {proc.stderr[-300:]}")
            error = proc.stdout.strip()
        assert error.startswith("permission denied"), error
    finally:
        (folder / "secret.jpg").chmod(0o644)
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()
