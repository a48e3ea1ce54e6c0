"""Helpers that write real small images and fake dataset trees in each published layout (for data tests)."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 60),
    "blue": (30, 60, 220),
    "yellow": (230, 220, 40),
    "grey": (128, 128, 128),
}


def image_bytes(
    colour: tuple[int, int, int] = (200, 40, 40),
    size: tuple[int, int] = (16, 12),
    fmt: str = "JPEG",
    seed: int | None = None,
) -> bytes:
    """Encoded bytes of a solid-colour RGB image; ``seed`` adds noise (different seeds, different bytes)."""
    arr = np.empty((size[1], size[0], 3), dtype=np.float64)
    arr[...] = colour
    if seed is not None:
        arr += np.random.default_rng(seed).normal(0, 6, arr.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def write_image(
    path: Path,
    colour: tuple[int, int, int] = (200, 40, 40),
    *,
    size: tuple[int, int] = (16, 12),
    seed: int | None = 0,
) -> Path:
    """Write a small real image (format from the suffix); distinct ``seed`` => distinct bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".png": "PNG", ".gif": "GIF", ".bmp": "BMP", ".webp": "WEBP"}.get(path.suffix.lower(), "JPEG")
    path.write_bytes(image_bytes(colour, size, fmt, seed))
    return path


def png_with_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression-bomb stand-in)."""
    data = bytearray(image_bytes((0, 0, 0), (1, 1), "PNG"))
    ihdr = 8 + 4  # signature, length field
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 4 + 13]))
    data[ihdr + 4 + 13 : ihdr + 4 + 17] = struct.pack(">I", crc)
    return bytes(data)


def _class_folder_tree(base: Path, classes: dict[str, int], ext: str = ".jpg", seed0: int = 0) -> None:
    seed = seed0
    for cls, n in classes.items():
        for i in range(n):
            write_image(base / cls / f"{i:03d}{ext}", seed=seed)
            seed += 1


def make_emoset(root: Path) -> None:
    """3 splits, 2 classes, annotation JSONs with attributes; one annotation missing."""
    seed = 100
    for split, n in (("train", 3), ("val", 1), ("test", 2)):
        entries = []
        for cls in ("amusement", "awe"):
            for i in range(n):
                stem = f"{cls}/{cls}_{split}{i:02d}"
                write_image(root / "image" / f"{stem}.jpg", seed=seed)
                seed += 1
                if not (split == "test" and cls == "awe" and i == 1):
                    ann = {
                        "emotion": cls,
                        "brightness": 0.5,
                        "colorfulness": 0.25,
                        "scene": "beach",
                        "object": ["dog"],
                        "facial_expression": "happy",
                        "human_action": "run",
                    }
                    (root / "annotation" / cls).mkdir(parents=True, exist_ok=True)
                    (root / "annotation" / f"{stem}.json").write_text(json.dumps(ann))
                entries.append([cls, f"image/{stem}.jpg", f"annotation/{stem}.json"])
        (root / f"{split}.json").write_text(json.dumps(entries))


def make_webemo(root: Path, with_validation: bool = True) -> None:
    splits = {"train": 4, "test": 2} | ({"validation": 1} if with_validation else {})
    for k, (split, n) in enumerate(splits.items()):
        _class_folder_tree(
            root / split, {"cheerfullness": n, "irritabilty": n, "rage": n}, seed0=200 + 10 * k
        )


def make_emotionroi(root: Path, per_class: int = 10) -> None:
    train, test = [], []
    for j, cls in enumerate(("anger", "joy")):
        for i in range(per_class):
            write_image(root / "images" / cls / f"{i}.jpg", seed=300 + 20 * j + i)
            (train if i < per_class * 0.7 else test).append(f"{cls}/{i}.jpg")
    write_image(root / "images" / "joy" / "unlisted.jpg", seed=399)
    (root / "training_testing_split").mkdir()
    (root / "training_testing_split" / "training.txt").write_text("\n".join(train) + "\n")
    (root / "training_testing_split" / "testing.txt").write_text("\n".join(test) + "\n")


def make_emotion6(root: Path, per_class: int = 10) -> None:
    _class_folder_tree(
        root / "images", {"fear": per_class, "joy": per_class, "surprise": per_class}, seed0=400
    )


def make_fi(root: Path) -> None:
    _class_folder_tree(root, {"Amusement": 5, "Sadness": 5}, seed0=500)


def make_artphoto(root: Path) -> None:
    for i in range(4):
        write_image(root / f"sad_{i}.jpg", seed=600 + i)
        write_image(root / f"content_{i}.jpg", seed=610 + i)
    write_image(root / "nolabel.jpg", seed=620)


def make_abstract(root: Path) -> None:
    rows = [
        "'Filename','Amusement','Anger','Awe','Content','Disgust','Excitement','Fear','Sad'",
        "'abstract_1.jpg',5,0,1,0,0,0,0,0",  # amusement
        "'abstract_2.jpg',0,0,0,0,0,0,2,7",  # sadness
        "'abstract_3.jpg',3,0,3,0,0,0,0,0",  # tie -> dropped
        "'abstract_4.jpg',0,0,0,0,0,0,0,0",  # no votes -> dropped
        "'abstract_5.jpg',1,1,1,1,1,1,1,1",  # 8-way tie -> dropped
    ]
    (root / "ABSTRACT_groundTruth.csv").write_text("\n".join(rows) + "\n")
    for i in range(1, 6):
        write_image(root / "images" / f"abstract_{i}.jpg", seed=700 + i)


def make_unbiasedemo(root: Path) -> None:
    seed = 800
    for emotion in ("love", "anger"):
        for subject in ("child", "dog"):
            for i in range(3):
                write_image(root / "images" / emotion / subject / f"{i}.jpg", seed=seed)
                seed += 1


def make_emotic(root: Path) -> None:
    write_image(root / "mscoco" / "images" / "a.jpg", seed=900)
    write_image(root / "ade20k" / "images" / "b.jpg", seed=901)
    write_image(root / "mscoco" / "images" / "c.jpg", seed=902)
    train = [
        {
            "folder": "mscoco/images",
            "filename": "a.jpg",
            "people": [
                {
                    "bbox": [1, 2, 10, 11],
                    "categories": ["Engagement", "Happiness"],
                    "vad": [7, 6, 8],
                    "gender": "Female",
                    "age": "Adult",
                },
                {"bbox": [3, 3, 9, 9], "categories": ["Happiness", "Doubt/Confusion"], "vad": [5, 4, 6]},
            ],
        },
        {"path": "ade20k/images/b.jpg", "people": [{"bbox": [0, 0, 5, 5], "categories": []}]},
    ]
    test = [
        {
            "path": "mscoco/images/c.jpg",
            "people": [{"bbox": [0, 0, 4, 4], "categories": ["Fatigue"], "vad": [2, 11, 3]}],
        }
    ]
    (root / "annotations").mkdir()
    (root / "annotations" / "train.json").write_text(json.dumps(train))
    (root / "annotations" / "test.json").write_text(json.dumps(test))


# EMOTIC in its published formats: the same people (two images with several persons, one test image).
EMOTIC_PEOPLE = {
    "train": [
        ("mscoco/images", "COCO_a.jpg", [([2, 3, 20, 18], ["Engagement", "Happiness"], (7, 6, 8), "Female"),
                                         ([24, 4, 38, 22], ["Doubt/Confusion"], (4, 5, 5), "Male")]),
        ("ade20k/images", "sun_b.jpg", [([1, 1, 12, 12], ["Peace"], (6, 2, 6), "Male"),
                                        ([14, 2, 30, 20], ["Fatigue", "Sadness"], (3, 3, 4), "Female"),
                                        ([30, 10, 39, 29], ["Pain"], (2, 7, 3), "Male")]),
    ],
    "test": [("framesdb/images", "frame_c.jpg",
              [([5, 5, 25, 25], ["Fear", "Surprise"], (2.4, 8.6, 3.5), "Male")])],
}


def _emotic_images(root: Path) -> None:
    for i, (folder, name, _) in enumerate(p for ps in EMOTIC_PEOPLE.values() for p in ps):
        write_image(root / "emotic" / folder / name, size=(40, 30), seed=950 + i)


def make_emotic_mat(root: Path) -> Path:
    """The official release: ``Annotations/Annotations.mat`` (struct arrays) + ``emotic/<folder>/<file>``,
    written by the library's writer (the one smoke runs use)."""
    from tinyemo_core.smoke.datasets import write_emotic_mat

    write_emotic_mat(root, {s: list(images) for s, images in EMOTIC_PEOPLE.items()}, image_size=(40, 30))
    _emotic_images(root)
    return root


def make_emotic_csv(root: Path) -> Path:
    """The ``mat2py`` CSV conversion: one row per person, Python-list columns (images under emotic/)."""
    import csv

    (root / "annotations").mkdir(parents=True)
    for split, images in EMOTIC_PEOPLE.items():
        with (root / "annotations" / f"{split}.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["Index", "Folder", "Filename", "Image Size", "BBox", "Categorical_Labels",
                        "Continuous_Labels", "Gender", "Age"])
            n = 0
            for folder, name, people in images:
                for box, cats, vad, gender in people:
                    w.writerow([n, folder, name, [40, 30], box, cats, list(vad), gender, "Adult"])
                    n += 1
    _emotic_images(root)
    return root


def write_flat_manifest(root: Path, labels: list[str], name: str = "manifest.parquet",
                        size: tuple[int, int] = (32, 32)) -> Path:
    """Small PNGs (one per label) and an ingest-layout manifest over them (dataset "demo", split train)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for i, label in enumerate(labels):
        colour = (20 * i % 256, 255 - 20 * i % 256, 90)
        Image.new("RGB", (size[0] + i, size[1]), colour).save(root / f"{i}.png")
        rows.append(dict(image_id=f"img{i:02d}", path=f"{i}.png", split="train", label=label, labels=[label],
                         taxonomy="demo", dataset="demo", status="ok", error=None, attributes="{}"))
    pq.write_table(pa.Table.from_pylist(rows), root / name)
    return root / name
