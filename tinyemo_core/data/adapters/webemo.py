"""WEBEmo (Panda et al. 2018): ``<root>/{train,validation,test}/<class>/*.jpg``.

Folder names are normalised (``cheerfullness`` -> ``cheerfulness``, ``irritabilty`` -> ``irritability``);
the reference code embeds the misspellings as-is. Without a validation folder, train is kept whole (no val).
"""

from __future__ import annotations

from pathlib import Path

from .base import Adapter, AdapterResult, DatasetLayoutError, has_subfolders, normalise_split
from .class_folders import read_class_folders


def read_webemo(root: Path) -> AdapterResult:
    result = AdapterResult([], root)
    split_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not split_dirs:
        raise DatasetLayoutError(f"webemo: expected train/, validation/ and test/ folders in {root}")
    for d in split_dirs:
        try:
            split = normalise_split(d.name)
        except DatasetLayoutError as exc:
            raise DatasetLayoutError(f"webemo: {d} is not a split folder ({exc})") from exc
        read_class_folders(root, d, result, split=split)
    return result


def check_webemo(root: Path) -> list[str]:
    if not root.is_dir():
        return [f"expected a folder at {root}"]
    found = [d for d in ("train", "validation", "val", "test") if (root / d).is_dir()]
    if not found:
        return [f"expected train/, validation/ and test/ folders of <class>/ folders under {root}"]
    return [p for d in found for p in has_subfolders(root / d, f"class folders in {d}/")]


ADAPTER = Adapter(
    "webemo", "parrott25", read_webemo, "WEBEmo: {train,validation,test}/<class>/*", check_webemo
)
