"""Affective Explanations / "Affection" (Achlioptas et al., CVPR 2023): emotions + free-text explanations.

The public release (affective-explanations.org; the format its README documents) is one CSV row per
annotation, 526,749 rows over 85,007 images:

- ``affection_raw_public_version_0.csv``: ``workerid, utterance, emotion, dataset, image_name``;
- ``affection_preprocessed_public_version_0.csv``: the same plus ``utterance_spelled, tokens, tokens_len,
  tokens_encoded, split`` (train/val/test, the split the authors trained on).

``emotion`` is one of ArtEmis' nine options (Mikels' eight + "something else"); ``dataset`` names the source
image collection (``coco_affective``, ``visual_genome_affective``, ``flickr30k_affective``,
``you_aaai_affective``, ``emotional_machines_affective``) and ``image_name`` is the file name exactly as that
collection ships it. The images are not in the release: we read them from ``images/<dataset>/<image_name>``
under the root (link each collection's image folder there; docs/datasets.md).

One record per image: label = the emotion most annotators chose (ties: the earliest-listed of the tied
emotions, counted as a note), every chosen emotion in ``labels`` (most chosen first), and the raw explanations
(``utterance``) as ``attributes["explanations"]``: TinyEmo Table VI's human references for RefCLIPScore. The
preprocessed file's split is kept (an image whose rows disagree takes its most common split, counted).
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from .base import Adapter, AdapterResult, DatasetLayoutError, SampleRecord, label_or_none, normalise_split

PREPROCESSED = "affection_preprocessed_public_version_0.csv"
RAW = "affection_raw_public_version_0.csv"
RELEASE_DIR = Path("language") / "version_0"  # where the release unpacks its CSVs
IMAGES = "images"
COLUMNS = ("utterance", "emotion", "dataset", "image_name")
SOURCES = ("coco_affective", "visual_genome_affective", "flickr30k_affective", "you_aaai_affective",
           "emotional_machines_affective")


def find_csv(root: Path) -> Path | None:
    """The release CSV under ``root`` (or ``root/language/version_0``), the preprocessed one first."""
    for name in (PREPROCESSED, RAW):
        for folder in (root, root / RELEASE_DIR):
            if (folder / name).is_file():
                return folder / name
    return None


def read_affection(root: Path) -> AdapterResult:
    path = find_csv(root)
    if path is None:
        raise DatasetLayoutError(f"affection: expected {PREPROCESSED} or {RAW} in {root} or "
                                 f"{root / RELEASE_DIR}")
    result = AdapterResult([], root)
    images: dict[tuple[str, str], dict] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetLayoutError(f"affection: {path} lacks columns {missing} (has {reader.fieldnames})")
        for row in reader:
            emotion = label_or_none(row["emotion"] or "")
            source, name = (row["dataset"] or "").strip(), (row["image_name"] or "").strip()
            if emotion is None or not source or not name:
                result.drop("annotation without emotion, dataset or image name")
                continue
            entry = images.setdefault((source, name), {"emotions": [], "explanations": [], "splits": []})
            entry["emotions"].append(emotion)
            if (text := (row["utterance"] or "").strip()):
                entry["explanations"].append(text)
            if row.get("split"):
                entry["splits"].append(normalise_split(row["split"]))
    for (source, name), entry in images.items():
        counts = Counter(entry["emotions"])
        order = sorted(counts, key=lambda e: (-counts[e], entry["emotions"].index(e)))
        if len(order) > 1 and counts[order[0]] == counts[order[1]]:
            result.note("tied majority emotion (earliest listed kept first)")
        split = None
        if entry["splits"]:
            splits = Counter(entry["splits"])
            split = splits.most_common(1)[0][0]
            if len(splits) > 1:
                result.note("rows of one image in several splits (most common kept)")
        result.records.append(SampleRecord(
            f"{IMAGES}/{source}/{name}", split, order,
            {"source": source, "image_name": name, "explanations": entry["explanations"],
             "emotion_votes": dict(counts)},
        ))
    return result


def check_affection(root: Path) -> list[str]:
    problems = []
    if find_csv(root) is None:
        problems.append(f"expected {PREPROCESSED} or {RAW} in {root} or {root / RELEASE_DIR}")
    if not (root / IMAGES).is_dir():
        problems.append(f"expected {root / IMAGES}/<dataset>/<image_name> (link the source collections "
                        "there)")
    return problems


ADAPTER = Adapter(
    "affection",
    "open",
    read_affection,
    "Affective Explanations: release CSV + images/<dataset>/<image_name>, explanations kept",
    check_affection,
)
