"""EmotionROI (Peng et al. 2016): ``images/<cls>/*`` + ``training_testing_split/{training,testing}.txt``.

Split files list ``cls/file`` lines relative to ``images/``. The published split has no validation part;
the official training set is kept whole (TinyEmo trains on all of it), so EmotionROI has no val rows and
the best epoch is chosen on the other held-in datasets' validation splits (docs/datasets.md). Images
listed in neither file are dropped and counted; listed-but-missing files are kept (ingest quarantines
them).
"""

from __future__ import annotations

from pathlib import Path

from .base import (
    Adapter,
    AdapterResult,
    SampleRecord,
    has_subfolders,
    iter_image_files,
    label_or_none,
    missing,
    require,
)

SPLIT_LISTS = {"train": "training.txt", "test": "testing.txt"}


def read_emotionroi(root: Path) -> AdapterResult:
    images = require(root / "images", "an images/<class>/ folder", "emotionroi")
    split_dir = require(root / "training_testing_split", "training_testing_split/", "emotionroi")
    result = AdapterResult([], root)
    listed: set[str] = set()
    for split, name in SPLIT_LISTS.items():
        lines = require(split_dir / name, name, "emotionroi").read_text(encoding="utf-8").splitlines()
        for line in lines:
            entry = line.strip().replace("\\", "/")
            if not entry:
                continue
            if entry in listed:
                result.drop("listed twice in split files")
                continue
            listed.add(entry)
            label = label_or_none(entry.split("/")[0]) if "/" in entry else None
            if label is None:
                result.drop("split line without class folder")
                continue
            result.records.append(SampleRecord(f"images/{entry}", split, [label]))
    for image in iter_image_files(images):
        if image.relative_to(images).as_posix() not in listed:
            result.drop("not in official split")
    return result


def check_emotionroi(root: Path) -> list[str]:
    return missing(root, *(f"training_testing_split/{n}" for n in SPLIT_LISTS.values())) or has_subfolders(
        root / "images", "an images/<class>/ folder"
    )


ADAPTER = Adapter(
    "emotionroi", "ekman6", read_emotionroi, "EmotionROI: images/<cls>/* + training_testing_split/*.txt",
    check_emotionroi,
)
