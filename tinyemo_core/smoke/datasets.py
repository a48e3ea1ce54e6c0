"""A few generated images in a dataset's own on-disk layout, for every layout the adapters read.

:func:`write_layout` writes ``layout`` under ``root`` so that ``list_samples(layout, root)`` reads it the way
it reads the published dataset: EmotionROI's split lists, EmoSet's split JSONs and per-image annotation JSONs,
WEBEmo's split folders (with the published misspelt class folders), Emotion6/FI/UnbiasedEmo class folders,
ArtPhoto's file-name prefixes, Abstract's vote CSV, EMOTIC's official ``Annotations/Annotations.mat`` with
people (boxes, categories, V/A/D) and the generic ImageFolder/CSV/JSONL forms. Same arguments, same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from tinyemo_core.data.adapters import ADAPTERS
from tinyemo_core.data.taxonomy import EKMAN6, get_taxonomy

__all__ = ["CLASSES", "LAYOUTS", "write_emotic_mat", "write_layout"]

CLASSES = 4  # classes per dataset (spread over its taxonomy)
# train/val/test images per class where the layout publishes splits; otherwise all go to one pool
PER_SPLIT = {"train": 2, "val": 1, "test": 1}
SIZE = (48, 40)
# WEBEmo's published folders carry these misspellings (the adapter corrects them); keep them in smoke data
_WEBEMO_FOLDERS = {"cheerfulness": "cheerfullness", "irritability": "irritabilty"}
_ABSTRACT_HEADER = ("Amusement", "Anger", "Awe", "Content", "Disgust", "Excitement", "Fear", "Sad")


def _labels(layout: str, taxonomy: str | None, classes: int) -> list[str]:
    name = taxonomy or ADAPTERS[layout].taxonomy
    if layout == "webemo" and name == "parrott25" and classes == CLASSES:  # two published misspelt folders
        return ["affection", "cheerfulness", "irritability", "sadness"]
    words = list(get_taxonomy(name).labels) if name != "open" else list(EKMAN6)
    step = max(1, len(words) // classes)
    return words[::step][:classes]


def image_bytes(seed: list[int], fmt: str = "JPEG", size: tuple[int, int] = SIZE) -> bytes:
    """A small RGB image: a seeded colour field with noise and a bright block (distinct bytes per seed)."""
    rng = np.random.default_rng(seed)
    arr = np.empty((size[1], size[0], 3), dtype=np.float64)
    arr[...] = rng.uniform(30, 225, 3)
    x, y = rng.integers(0, size[0] // 2), rng.integers(0, size[1] // 2)
    arr[y : y + size[1] // 3, x : x + size[0] // 3] = rng.uniform(0, 255, 3)
    arr += rng.normal(0, 10, arr.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


class _Writer:
    def __init__(self, root: Path, name: str, seed: int) -> None:
        self.root, self.base = root, [seed, zlib.crc32(name.encode())]

    def image(self, rel: str, *key: object) -> str:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        fmt = "PNG" if rel.endswith(".png") else "JPEG"
        path.write_bytes(image_bytes([*self.base, *(zlib.crc32(str(k).encode()) for k in key)], fmt))
        return rel

    def text(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _splits() -> list[tuple[str, int]]:
    return [(split, i) for split, n in PER_SPLIT.items() for i in range(n)]


def _pool() -> range:
    return range(sum(PER_SPLIT.values()))


def _emotionroi(w: _Writer, labels: list[str]) -> None:
    lists: dict[str, list[str]] = {"training.txt": [], "testing.txt": []}
    for label in labels:
        for split, i in _splits():
            rel = w.image(f"images/{label}/{label}_{split}{i}.jpg", label, split, i)
            lists["testing.txt" if split == "test" else "training.txt"].append(rel.removeprefix("images/"))
    for name, lines in lists.items():
        w.text(f"training_testing_split/{name}", "\n".join(lines) + "\n")


def _emoset(w: _Writer, labels: list[str]) -> None:
    listing: dict[str, list[list[str]]] = {s: [] for s in PER_SPLIT}
    for label in labels:
        for split, i in _splits():
            stem = f"{label}/{label}_{split}{i:05d}"
            w.image(f"image/{stem}.jpg", label, split, i)
            w.text(f"annotation/{stem}.json", json.dumps({
                "emotion": label, "brightness": 0.5, "colorfulness": 0.4, "scene": "street",
                "object": ["person"], "facial_expression": "neutral", "human_action": "walking"}))
            listing[split].append([label, f"image/{stem}.jpg", f"annotation/{stem}.json"])
    for split, entries in listing.items():
        w.text(f"{split}.json", json.dumps(entries))


def _webemo(w: _Writer, labels: list[str]) -> None:
    folders = {"train": "train", "val": "validation", "test": "test"}
    for label in labels:
        for split, i in _splits():
            w.image(f"{folders[split]}/{_WEBEMO_FOLDERS.get(label, label)}/{i:04d}.jpg", label, split, i)


def _class_folders(prefix: str, ext: str = ".jpg") -> Callable[[_Writer, list[str]], None]:
    def write(w: _Writer, labels: list[str]) -> None:
        for label in labels:
            for i in _pool():
                w.image(f"{prefix}{label}/{i:04d}{ext}", label, i)

    return write


def _unbiasedemo(w: _Writer, labels: list[str]) -> None:
    for label in labels:
        for i in _pool():
            w.image(f"images/{label}/{('child', 'dog')[i % 2]}/{i:04d}.jpg", label, i)


def _artphoto(w: _Writer, labels: list[str]) -> None:
    short = {"sadness": "sad", "contentment": "content"}
    for label in labels:
        for i in _pool():
            w.image(f"{short.get(label, label)}_{i}.jpg", label, i)


def _abstract(w: _Writer, labels: list[str]) -> None:
    words = [get_taxonomy("mikels8").labels[j] for j in range(len(_ABSTRACT_HEADER))]
    rows = [["'Filename'", *(f"'{h}'" for h in _ABSTRACT_HEADER)]]
    for label in labels:
        for i in _pool():
            name = f"abstract_{label}_{i}.jpg"
            w.image(f"images/{name}", label, i)
            rows.append([f"'{name}'", *("5" if word == label else str(i % 2) for word in words)])
    w.text("ABSTRACT_groundTruth.csv", "\n".join(",".join(r) for r in rows) + "\n")


def _generic(kind: str) -> Callable[[_Writer, list[str]], None]:
    def write(w: _Writer, labels: list[str]) -> None:
        rows = []
        for label in labels:
            for split, i in _splits():
                rel = w.image(f"images/{split}/{label}_{i}.jpg", label, split, i)
                rows.append({"path": rel, "label": label, "split": split})
        if kind == "csv":
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=["path", "label", "split"])
            writer.writeheader()
            writer.writerows(rows)
            w.text("labels.csv", buf.getvalue())
        else:
            w.text("labels.jsonl", "".join(json.dumps(r) + "\n" for r in rows))

    return write


def _imagefolder(w: _Writer, labels: list[str]) -> None:
    for label in labels:
        for split, i in _splits():
            w.image(f"{split}/{label}/{i:04d}.jpg", label, split, i)


# --- EMOTIC: the official Annotations.mat (MATLAB struct arrays) --------------------------------------------
Person = tuple[list[float], list[str], tuple[float, float, float], str]


def write_emotic_mat(root: Path, images: dict[str, list[tuple[str, str, list[Person]]]],
                     image_size: tuple[int, int] = SIZE) -> Path:
    """``Annotations/Annotations.mat`` as the official release lays it out: per split a struct array of
    images (filename, folder, image_size, person); a train person carries one annotator's categories and
    V/A/D, a val/test person the ``combined_*`` fields. ``images``: split -> (folder, file, people), each
    person (body bbox x1 y1 x2 y2, categories, (valence, arousal, dominance), gender)."""
    from scipy.io import savemat

    def person(box, cats, vad, gender, split) -> dict:
        cont = {"valence": float(vad[0]), "arousal": float(vad[1]), "dominance": float(vad[2])}
        catstruct = {"worker_id": "W1", "categories": np.array(cats, dtype=object)}
        base = {"body_bbox": np.array(box, dtype=float), "gender": gender, "age": "Adult"}
        if split == "train":
            return {**base, "annotations_categories": catstruct, "annotations_continuous": cont}
        return {**base, "annotations_categories": np.array([catstruct, catstruct], dtype=object),
                "combined_categories": np.array(cats, dtype=object),
                "annotations_continuous": np.array([cont, cont], dtype=object), "combined_continuous": cont}

    out = {}
    for split, entries in images.items():
        keys = list(person([0, 0, 1, 1], ["Peace"], (1, 1, 1), "Male", split))
        table = np.zeros((1, len(entries)), dtype=[("filename", object), ("folder", object),
                                                   ("image_size", object), ("person", object)])
        for i, (folder, name, people) in enumerate(entries):
            parr = np.zeros((1, len(people)), dtype=[(k, object) for k in keys])
            for j, p in enumerate(people):
                d = person(*p, split)
                parr[0, j] = tuple(d[k] for k in keys)
            table[0, i] = (name, folder, {"n_col": image_size[0], "n_row": image_size[1]}, parr)
        out[split] = table
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    savemat(root / "Annotations" / "Annotations.mat", out)
    return root / "Annotations" / "Annotations.mat"


def _emotic(w: _Writer, labels: list[str]) -> None:
    cats = [c.title() if c != "doubt/confusion" else "Doubt/Confusion"
            for c in get_taxonomy("emotic26").labels]
    images: dict[str, list[tuple[str, str, list[Person]]]] = {s: [] for s in PER_SPLIT}
    k = 0
    for split, n in PER_SPLIT.items():
        for i in range(n * 2):
            folder, name = "mscoco/images", f"COCO_{split}_{i:03d}.jpg"
            w.image(f"emotic/{folder}/{name}", split, i)
            people: list[Person] = []
            for j in range(1 + i % 2):  # one or two people, each with one to three categories
                chosen = [cats[(k + 7 * m) % len(cats)] for m in range(1 + (k % 3))]
                box = [2.0 + 20 * j, 3.0, 20.0 + 20 * j, 36.0]
                people.append((box, chosen, (1 + k % 10, 1 + (3 * k) % 10, 1 + (7 * k) % 10),
                               ("Male", "Female")[k % 2]))
                k += 1
            images[split].append((folder, name, people))
    write_emotic_mat(w.root, images)


def _affection(w: _Writer, labels: list[str]) -> None:
    """Affective Explanations' release CSV (the preprocessed one, with splits) + images/<dataset>/<name>."""
    import csv

    head = ["workerid", "utterance", "emotion", "dataset", "image_name", "utterance_spelled", "tokens",
            "tokens_len", "tokens_encoded", "split"]
    rows = []
    for label in labels:
        for split, i in _splits():
            name = f"COCO_train2014_{zlib.crc32(f'{label}/{split}/{i}'.encode()):012d}.jpg"
            w.image(f"images/coco_affective/{name}", label, split, i)
            for k, text in enumerate((f"it makes me feel {label}", f"the scene feels like {label} to me")):
                rows.append([f"w{k}", text, label, "coco_affective", name, text, "[]", 0, "[]", split])
    path = w.root / "language" / "version_0" / "affection_preprocessed_public_version_0.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([head, *rows])


WRITERS: dict[str, Callable[[_Writer, list[str]], None]] = {
    "emotionroi": _emotionroi,
    "emoset": _emoset,
    "webemo": _webemo,
    "emotion6": _class_folders("images/"),
    "fi": _class_folders(""),
    "artphoto": _artphoto,
    "abstract": _abstract,
    "unbiasedemo": _unbiasedemo,
    "emotic": _emotic,
    "affection": _affection,
    "imagefolder": _imagefolder,
    "csv": _generic("csv"),
    "jsonl": _generic("jsonl"),
}
LAYOUTS = tuple(WRITERS)


def write_layout(layout: str, root: Path | str, *, name: str = "", taxonomy: str | None = None,
                 classes: int = CLASSES, seed: int = 0) -> Path:
    """Write a few images of ``classes`` labels in ``layout`` under ``root`` (which must not exist yet)."""
    if layout not in WRITERS:
        raise ValueError(f"no smoke writer for layout {layout!r}; known: {', '.join(LAYOUTS)}")
    root = Path(root)
    root.mkdir(parents=True)
    WRITERS[layout](_Writer(root, name or layout, seed), _labels(layout, taxonomy, classes))
    return root
