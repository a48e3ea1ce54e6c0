"""FI / Flickr-Instagram (You et al. 2016): ``<root>/<cls>/*.jpg``, no official split (seeded stratified
split here; the reference's random 80/20 split is unseeded)."""

from __future__ import annotations

from pathlib import Path

from .base import Adapter, AdapterResult, has_subfolders
from .class_folders import read_class_folders


def read_fi(root: Path) -> AdapterResult:
    result = AdapterResult([], root)
    read_class_folders(root, root, result, split=None)
    return result


def check_fi(root: Path) -> list[str]:
    return has_subfolders(root, "a folder of <class>/ folders")


ADAPTER = Adapter("fi", "mikels8", read_fi, "FI: <cls>/*, no split", check_fi)
