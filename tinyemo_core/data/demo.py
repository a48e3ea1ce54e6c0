"""Offline demo datasets: small synthetic images in the real datasets' on-disk layouts.

Each underlying emotion CONCEPT has a visual prototype (hue, saturation, brightness, shape, stripe frequency
and angle) drawn with seeded jitter, and a concept looks the same in every dataset, so a projector trained
on ``demo_emoroi`` + ``demo_emoset`` + ``demo_webemo`` can transfer to the held-out ``demo_synonyms``, whose
class words (happiness, sorrow, fury, terror, nausea, shock: single tokens of BERT's uncased vocabulary)
occur in no training taxonomy. ``demo_emoset`` also holds one truncated JPEG and one byte-identical
duplicate so that quarantine and deduplication show up in the demo. Same arguments => byte-identical files.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

from tinyemo_core.store.demo_data import MARKER

__all__ = [
    "CONCEPTS", "DEMO_DATASETS", "DemoDataset", "Drawn",
    "describe_image", "draw", "generate_demo", "render_concept",
]

DEMO_VERSION = 2  # 2: harder (noisier, overlapping classes; see render_concept)


@dataclass(frozen=True)
class Prototype:
    hue: float  # 0-1
    sat: float
    val: float
    shape: str
    freq: float  # stripe cycles per image (0 = none)
    angle: float  # stripe angle, degrees


CONCEPTS: dict[str, Prototype] = {
    "joy": Prototype(0.14, 0.85, 0.95, "circle", 0, 0),
    "sadness": Prototype(0.62, 0.45, 0.35, "square", 2, 0),
    "anger": Prototype(0.00, 0.90, 0.75, "triangle", 6, 45),
    "fear": Prototype(0.78, 0.50, 0.20, "cross", 10, 90),
    "disgust": Prototype(0.22, 0.70, 0.45, "diamond", 8, 0),
    "surprise": Prototype(0.50, 0.70, 0.90, "ring", 4, 90),
    "amusement": Prototype(0.08, 0.80, 0.90, "circle", 3, 135),
    "awe": Prototype(0.56, 0.35, 0.80, "triangle", 1, 0),
    "contentment": Prototype(0.33, 0.45, 0.70, "square", 0, 0),
    "excitement": Prototype(0.93, 0.90, 0.80, "diamond", 12, 45),
    "affection": Prototype(0.86, 0.40, 0.92, "ring", 0, 0),
    "irritation": Prototype(0.04, 0.60, 0.50, "cross", 14, 0),
    "nervousness": Prototype(0.70, 0.30, 0.55, "diamond", 16, 90),
}


@dataclass(frozen=True)
class DemoDataset:
    """A generated dataset: ``path`` is its root, readable with ``list_samples(layout, path)``."""

    name: str
    layout: str
    taxonomy: str
    role: Literal["held_in", "zero_shot"]
    path: Path


# name -> (layout, taxonomy, role, {folder/class word: concept}, image format)
DEMO_DATASETS: dict[str, tuple[str, str, str, dict[str, str], str]] = {
    "demo_emoroi": ("emotionroi", "ekman6", "held_in",
                    {w: w for w in ("anger", "disgust", "fear", "joy", "sadness", "surprise")}, "JPEG"),
    "demo_emoset": ("emoset", "mikels8", "held_in",
                    {w: w for w in ("amusement", "anger", "awe", "contentment", "disgust", "excitement",
                                    "fear", "sadness")}, "JPEG"),
    "demo_webemo": ("webemo", "parrott25", "held_in",
                    {"affection": "affection", "cheerfullness": "joy", "contentment": "contentment",
                     "disgust": "disgust", "horror": "fear", "irritabilty": "irritation",
                     "nervousness": "nervousness", "rage": "anger", "sadness": "sadness",
                     "surprise": "surprise"}, "JPEG"),
    "demo_synonyms": ("emotion6", "open", "zero_shot",
                      {"happiness": "joy", "sorrow": "sadness", "fury": "anger", "terror": "fear",
                       "nausea": "disgust", "shock": "surprise"}, "PNG"),
}  # fmt: skip


def _shape_mask(size: int, shape: str, rng: np.random.Generator) -> np.ndarray:
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    r = size * rng.uniform(0.18, 0.3)
    cx, cy = rng.uniform(r, size - r, 2)
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=255)
    elif shape == "ring":
        draw.ellipse(box, outline=255, width=max(2, size // 16))
    elif shape == "square":
        draw.rectangle(box, fill=255)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=255)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=255)
    elif shape == "cross":
        w = max(2, int(r / 3))
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=255)
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=255)
    return np.asarray(mask, dtype=np.float64) / 255.0


# Hardness (demo version 2): class statistics are noisy and classes overlap, so accuracies land well below
# 100 % and a regression in training or evaluation shows. Per image: colour jitter (SD below); with
# probability MIX the colour is pulled towards a random other concept's (weight U(0.25, 0.6)); with
# probability SHAPE_SWAP the shape is a random other concept's; stripe frequency jitters by +-40 %.
HUE_SD, SAT_SD, VAL_SD, ANGLE_SD = 0.035, 0.12, 0.12, 20.0
MIX, SHAPE_SWAP = 0.35, 0.35


@dataclass(frozen=True)
class Drawn:
    """What :func:`render_concept` drew for one image: the final colour (after jitter and any pull towards
    ``mixed_with``'s colour), the shape, the stripes (cycles per image, 0 = none; angle in degrees, 0 =
    vertical bands) and the stripe phase. The grounded demo generator (``generate/backends/demo_grounded.py``)
    words its answers from these."""

    concept: str
    hue: float
    sat: float
    val: float
    shape: str
    freq: float
    angle: float
    phase: float
    mixed_with: str | None


def draw(concept: str, rng: np.random.Generator) -> Drawn:
    """The random draws of one image, in the order :func:`render_concept` makes them."""
    p = CONCEPTS[concept]
    others = [c for c in CONCEPTS if c != concept]
    hue, sat, val, mixed_with = p.hue, p.sat, p.val, None
    if rng.random() < MIX:
        mixed_with, w = others[int(rng.integers(len(others)))], rng.uniform(0.25, 0.6)
        q = CONCEPTS[mixed_with]
        dh = ((q.hue - hue + 0.5) % 1.0) - 0.5  # the short way round the hue circle
        hue, sat, val = hue + w * dh, (1 - w) * sat + w * q.sat, (1 - w) * val + w * q.val
    shape = CONCEPTS[others[int(rng.integers(len(others)))]].shape if rng.random() < SHAPE_SWAP else p.shape
    hue = (hue + rng.normal(0, HUE_SD)) % 1.0
    sat = float(np.clip(sat + rng.normal(0, SAT_SD), 0.05, 1.0))
    val = float(np.clip(val + rng.normal(0, VAL_SD), 0.08, 1.0))
    freq = p.freq * rng.uniform(0.6, 1.4)
    angle = p.angle + rng.normal(0, ANGLE_SD)
    phase = rng.uniform(0, 2 * np.pi)
    return Drawn(concept, float(hue), sat, val, shape, float(freq), float(angle), float(phase), mixed_with)


def render_concept(concept: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One RGB image of ``concept``: jittered prototype colour (sometimes mixed with another concept's),
    stripes, a contrasting shape (sometimes another concept's), pixel noise."""
    d = draw(concept, rng)
    yy, xx = np.mgrid[0:size, 0:size] / size
    theta = np.deg2rad(d.angle)
    stripes = np.sin(2 * np.pi * d.freq * (xx * np.cos(theta) + yy * np.sin(theta)) + d.phase)
    v = d.val + (0.15 * stripes if CONCEPTS[concept].freq else 0.0)
    mask = _shape_mask(size, d.shape, rng)
    v = v * (1 - mask) + (1.0 - 0.8 * d.val) * mask
    hsv = np.stack([np.full_like(v, d.hue), np.full_like(v, d.sat), v], axis=-1)
    hsv = np.clip(np.rint(hsv * 255), 0, 255).astype(np.uint8)
    rgb = np.asarray(Image.fromarray(hsv, mode="HSV").convert("RGB"), dtype=np.float64)
    rgb += rng.normal(0, 8, rgb.shape)
    return Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8), mode="RGB")


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)


def _json(obj: object) -> str:
    return json.dumps(obj, indent=1, sort_keys=True) + "\n"


def _split_of(i: int, n: int, fractions: tuple[float, float]) -> str:
    """Deterministic per-class split by index: first ``train`` share, then val, then test."""
    n_train = round(n * fractions[0])
    n_val = round(n * fractions[1])
    return "train" if i < n_train else "val" if i < n_train + n_val else "test"


def _image_rng(seed: int, name: str, word: str, i: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode()), zlib.crc32(word.encode()), i])


def _build(name: str, out: Path, seed: int, per_class: int, size: int) -> None:
    layout, _, _, classes, fmt = DEMO_DATASETS[name]
    ext = ".jpg" if fmt == "JPEG" else ".png"
    listing: dict[str, list[list[str]]] = {"train": [], "val": [], "test": []}
    for word, concept in classes.items():
        for i in range(per_class):
            img = render_concept(concept, size, _image_rng(seed, name, word, i))
            data = _encode(img, fmt)
            if layout == "emotionroi":
                split = _split_of(i, per_class, (0.7, 0.0))
                _write(out / "images" / word / f"{word}_{i:03d}{ext}", data)
                listing[split].append([f"{word}/{word}_{i:03d}{ext}"])
            elif layout == "emoset":
                stem = f"{word}/{word}_{i:05d}"
                hsv = np.asarray(img.convert("HSV"), dtype=np.float64) / 255.0
                annotation = {
                    "emotion": word,
                    "brightness": round(float(hsv[..., 2].mean()), 3),
                    "colorfulness": round(float(hsv[..., 1].mean()), 3),
                    "scene": "abstract pattern",
                    "object": [CONCEPTS[concept].shape],
                }
                _write(out / "image" / f"{stem}{ext}", data)
                _write(out / "annotation" / f"{stem}.json", _json(annotation))
                split = _split_of(i, per_class, (0.7, 0.1))
                listing[split].append([word, f"image/{stem}{ext}", f"annotation/{stem}.json"])
            elif layout == "webemo":
                split = {"train": "train", "val": "validation", "test": "test"}[
                    _split_of(i, per_class, (0.7, 0.1))
                ]
                _write(out / split / word / f"{i:04d}{ext}", data)
            else:  # emotion6
                _write(out / "images" / word / f"{i:04d}{ext}", data)
    if layout == "emotionroi":
        for split, file in (("train", "training.txt"), ("test", "testing.txt")):
            _write(out / "training_testing_split" / file, "".join(f"{e[0]}\n" for e in listing[split]))
    if layout == "emoset":
        _add_bad_files(out, listing)
        for split, entries in listing.items():
            _write(out / f"{split}.json", _json(entries))


def _add_bad_files(out: Path, listing: dict[str, list[list[str]]]) -> None:
    """One truncated JPEG (quarantined at ingest) and one duplicate of an existing image (collapsed)."""
    first = listing["train"][0]  # [word, image path, annotation path]
    data = (out / first[1]).read_bytes()
    word = first[0]
    for suffix, payload in (("99998", data[: len(data) // 2]), ("99999", data)):
        stem = f"{word}/{word}_{suffix}"
        _write(out / "image" / f"{stem}.jpg", payload)
        _write(out / "annotation" / f"{stem}.json", (out / first[2]).read_text(encoding="utf-8"))
        listing["train"].append([word, f"image/{stem}.jpg", f"annotation/{stem}.json"])


def generate_demo(
    root: Path, *, seed: int = 0, images_per_class: int = 10, image_size: int = 64
) -> dict[str, DemoDataset]:
    """Write the demo datasets under ``root`` (skipped when a marker with the same parameters exists).

    Each dataset is built in a temporary folder and renamed into place, marker file included, so an
    interrupted run never leaves a half dataset that looks complete.
    """
    if images_per_class < 2 or image_size < 16:
        raise ValueError("images_per_class must be >= 2 and image_size >= 16")
    root = Path(root)
    params = {"version": DEMO_VERSION, "seed": seed, "images_per_class": images_per_class,
              "image_size": image_size}  # fmt: skip
    out: dict[str, DemoDataset] = {}
    for name, (layout, taxonomy, role, _, _) in DEMO_DATASETS.items():
        final = root / name
        marker = final / MARKER
        if not (marker.exists() and json.loads(marker.read_text(encoding="utf-8")) == params):
            tmp = root / f".{name}.tmp-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            _build(name, tmp, seed, images_per_class, image_size)
            _write(tmp / MARKER, _json(params))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        out[name] = DemoDataset(name, layout, taxonomy, role, final)  # type: ignore[arg-type]
    return out


def describe_image(path: Path | str) -> tuple[str, str, Drawn] | None:
    """``(dataset, class word, what was drawn)`` for an image that :func:`generate_demo` wrote, found from its
    path (the dataset folder with the marker file, the class folder, the index in the file name) by
    repeating the image's seeded draws; None for any other file. The truncated and duplicated EmoSet
    extras are copies of their class's image 0."""
    path = Path(path)
    root = next((p for p in path.parents if (p / MARKER).is_file()), None)
    if root is None or root.name not in DEMO_DATASETS or path.parent == root:
        return None
    classes = DEMO_DATASETS[root.name][3]
    word = path.parent.name
    digits = path.stem.rsplit("_", 1)[-1]
    if word not in classes or not digits.isdigit():
        return None
    params = json.loads((root / MARKER).read_text(encoding="utf-8"))
    i = int(digits) if int(digits) < params["images_per_class"] else 0
    return root.name, word, draw(classes[word], _image_rng(params["seed"], root.name, word, i))
