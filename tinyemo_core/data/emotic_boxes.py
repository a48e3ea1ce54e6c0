"""The person-in-the-red-box images of LLaVA on EMOTIC: the image with ONE person's body box drawn in red.

Only the outline pixels change (Pillow's ``ImageDraw.rectangle`` with ``outline`` and no fill, drawn inside
the box edges); the file is PNG, lossless, so no other pixel moves (a JPEG re-encode would change them all).
Rendered images are content-addressed under ``<storage>/emotic_boxes/<key[:2]>/<key>.png``, ``key`` = hash
of (source image id, box, style, code version): the same person is drawn once whatever dataset or export asks,
and a file that exists is complete (written to a temporary name and renamed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from tinyemo_core.data.images import load_rgb
from tinyemo_core.fingerprint import stable_hash
from tinyemo_core.store.atomic import write_atomic
from tinyemo_core.store.emotic import EmoticBoxesStore

RENDER_VERSION = "1"


@dataclass(frozen=True)
class BoxStyle:
    """Outline colour (RGB) and width in pixels; ``width=None`` = 0.5 % of the longer image side, >= 2 px."""

    colour: tuple[int, int, int] = (255, 0, 0)
    width: int | None = None

    def line_width(self, size: tuple[int, int]) -> int:
        return self.width if self.width is not None else max(2, round(0.005 * max(size)))


def pixel_box(bbox: Sequence[float], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``[x1, y1, x2, y2]`` (EMOTIC pixel coordinates) rounded and clipped to the image; x2/y2 inclusive."""
    w, h = size
    x1, y1, x2, y2 = (round(float(v)) for v in bbox)
    x1, x2 = sorted((min(max(x1, 0), w - 1), min(max(x2, 0), w - 1)))
    y1, y2 = sorted((min(max(y1, 0), h - 1), min(max(y2, 0), h - 1)))
    return x1, y1, x2, y2


def draw_box(image: Image.Image, bbox: Sequence[float], style: BoxStyle = BoxStyle()) -> Image.Image:
    """A copy of ``image`` (RGB) with the box outline drawn; every other pixel is unchanged."""
    out = image.convert("RGB").copy()
    width = style.line_width(out.size)
    ImageDraw.Draw(out).rectangle(pixel_box(bbox, out.size), outline=style.colour, width=width)
    return out


def render_key(image_id: str, bbox: Sequence[float], style: BoxStyle = BoxStyle()) -> str:
    box = [float(v) for v in bbox]
    return stable_hash("emotic-box", RENDER_VERSION, image_id, box, asdict(style), length=32)


def boxes_root(storage_root: Path) -> Path:
    return EmoticBoxesStore(storage_root).root


def rendered_relpath(image_id: str, bbox: Sequence[float], style: BoxStyle = BoxStyle()) -> str:
    """Path of the rendered image relative to :func:`boxes_root` (the LLaVA export's image root)."""
    key = render_key(image_id, bbox, style)
    return f"{key[:2]}/{key}.png"


def render_person(
    source: Path, image_id: str, bbox: Sequence[float], storage_root: Path, style: BoxStyle = BoxStyle()
) -> tuple[str, bool]:
    """Draw one person's box on ``source`` into the store unless it is there; ``(relpath, computed)``."""
    rel = rendered_relpath(image_id, bbox, style)
    dest = boxes_root(storage_root) / rel
    if dest.is_file():
        return rel, False
    boxed = draw_box(load_rgb(Path(source)), bbox, style)
    write_atomic(dest, lambda p: boxed.save(p, format="PNG"))
    return rel, True
