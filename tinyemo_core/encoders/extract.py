"""Batch feature extraction: parallel decode + preprocess (DataLoader workers) feeding one frozen encoder."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from tinyemo_core.encoders.vision_base import VisionEncoder

LoadImage = Callable[[Path], PIL.Image.Image]


def default_load_image(path: Path) -> PIL.Image.Image:
    """Open, apply the EXIF orientation, decode to RGB (the full decode happens inside the caller's try)."""
    with PIL.Image.open(path) as im:
        return PIL.ImageOps.exif_transpose(im).convert("RGB")


@dataclass
class EncodeResult:
    """Vectors for the inputs that decoded, their positions in the input, and why the others failed."""

    vectors: np.ndarray  # (n_ok, dim) float32
    ok_index: np.ndarray  # (n_ok,) int64 positions into the input sequence, ascending
    errors: dict[int, str] = field(default_factory=dict)  # position -> reason
    patches: np.ndarray | None = None  # (n_ok, T, width) float32 when the encoder's spec asks for them


class _ImageDataset(Dataset):
    def __init__(self, paths: Sequence[Path], preprocess: Callable, load_image: LoadImage) -> None:
        self.paths = list(paths)
        self.preprocess = preprocess
        self.load_image = load_image

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            return i, self.preprocess(self.load_image(Path(self.paths[i]))), None
        except Exception as exc:  # a bad file is reported, never fatal
            return i, None, f"{type(exc).__name__}: {exc}"


def _collate(items: list) -> tuple[list[int], torch.Tensor | None, dict[int, str]]:
    ok = [(i, t) for i, t, _ in items if t is not None]
    errors = {i: err for i, t, err in items if t is None}
    batch = torch.stack([t for _, t in ok]) if ok else None
    return [i for i, _ in ok], batch, errors


def _thread_prefetched(dataset: _ImageDataset, batch_size: int) -> Iterator[tuple]:
    """Collated batches in order, each prepared by a background thread while the caller uses the last."""
    starts = range(0, len(dataset), batch_size)

    def make(start: int) -> tuple:
        return _collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tinyemo-decode") as pool:
        pending = pool.submit(make, starts[0]) if starts else None
        for nxt in [*starts[1:], None]:
            assert pending is not None
            ready = pending.result()
            pending = pool.submit(make, nxt) if nxt is not None else None
            yield ready


def encode_images(
    encoder: VisionEncoder,
    paths: Sequence[Path],
    *,
    batch_size: int,
    num_workers: int,
    progress: bool = True,
    load_image: LoadImage | None = None,
) -> EncodeResult:
    """Encode ``paths`` with ``encoder``; undecodable files land in ``errors`` instead of raising.

    ``num_workers=0``: decode + preprocess run in ONE background thread of this process, one batch ahead of
    the forward (PIL decoding and torch ops release the GIL), so they overlap without any worker-process
    start-up or tensor pickling - the fast path for small jobs and few cores. ``num_workers>0``: DataLoader
    worker processes (many cores, GPU hosts); on CUDA batches are pinned and copied ``non_blocking``.
    """
    dataset = _ImageDataset(paths, encoder.preprocess, load_image or default_load_image)
    if num_workers == 0:
        batches: Iterator = _thread_prefetched(dataset, batch_size)
    else:
        batches = iter(DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                                  collate_fn=_collate, pin_memory=encoder.device.startswith("cuda"),
                                  prefetch_factor=4))
    want_patches = encoder.spec.patch_tokens
    vecs: list[np.ndarray] = []
    toks: list[np.ndarray] = []
    ok_index: list[int] = []
    errors: dict[int, str] = {}
    with tqdm(total=len(paths), disable=not progress, desc=f"encode {encoder.spec.model}", unit="img") as bar:
        for idx, batch, errs in batches:
            errors.update(errs)
            if batch is not None:
                out = encoder.encode_batch(batch, patches=want_patches)
                vecs.append(out.pooled)
                if out.patches is not None:
                    toks.append(out.patches)
                ok_index.extend(idx)
            bar.update(len(idx) + len(errs))
    vectors = np.concatenate(vecs) if vecs else np.zeros((0, encoder.dim), np.float32)
    patches = np.concatenate(toks) if toks else None
    return EncodeResult(vectors, np.asarray(ok_index, dtype=np.int64), errors, patches)
