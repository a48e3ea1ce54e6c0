"""UnbiasedEmo (Panda et al. 2018): ``images/<emotion>/<subject>/*.jpg``; the subject (e.g. "child",
"dog") is kept in ``attributes["subject"]``. No official split: seeded stratified split."""

from __future__ import annotations

from pathlib import Path

from .base import Adapter, AdapterResult, has_subfolders, require
from .class_folders import read_class_folders


def read_unbiasedemo(root: Path) -> AdapterResult:
    result = AdapterResult([], root)
    images = require(root / "images", "an images/<emotion>/<subject>/ folder", "unbiasedemo")
    read_class_folders(root, images, result, split=None, subject_level=True)
    return result


def check_unbiasedemo(root: Path) -> list[str]:
    return has_subfolders(root / "images", "an images/<emotion>/<subject>/ folder")


ADAPTER = Adapter(
    "unbiasedemo", "unbiased6", read_unbiasedemo, "UnbiasedEmo: images/<emotion>/<subject>/*",
    check_unbiasedemo,
)
