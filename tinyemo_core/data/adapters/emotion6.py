"""Emotion6 (Peng et al. 2015): ``images/<cls>/*.jpg``, no official split (seeded stratified split here;
the reference's random 70/30 split is unseeded)."""

from __future__ import annotations

from pathlib import Path

from .base import Adapter, AdapterResult, has_subfolders, require
from .class_folders import read_class_folders


def read_emotion6(root: Path) -> AdapterResult:
    result = AdapterResult([], root)
    images = require(root / "images", "an images/<class>/ folder", "emotion6")
    read_class_folders(root, images, result, split=None)
    return result


def check_emotion6(root: Path) -> list[str]:
    return has_subfolders(root / "images", "an images/<class>/ folder")


ADAPTER = Adapter("emotion6", "ekman6", read_emotion6, "Emotion6: images/<cls>/*, no split", check_emotion6)
