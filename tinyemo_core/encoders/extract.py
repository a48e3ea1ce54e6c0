"""Batch feature extraction: parallel decode + preprocess (DataLoader workers) feeding one frozen encoder."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from tinyemo_core.data.images import (
    DEFAULT_MAX_PIXELS,
    ImageDecodeError,
    decode_bytes,
    plain_jpeg_size,
    read_image_bytes,
)
from tinyemo_core.encoders.vision_base import VisionEncoder

LoadImage = Callable[[Path], PIL.Image.Image]
T = TypeVar("T")


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


def _prefetched(starts: Sequence[int], make: Callable[[int], T]) -> Iterator[T]:
    """``make(start)`` for each start, in order, each prepared by a background thread while the caller uses
    the previous one (PIL decoding, file reads and torch ops release the GIL)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tinyemo-decode") as pool:
        pending = pool.submit(make, starts[0]) if len(starts) else None
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
    ``encoder.spec.decode == "torchvision"``: batched ``torchvision.io.decode_jpeg`` (nvJPEG on CUDA) and
    the encoder's resize/crop/normalise as tensor ops on the device (:class:`TensorPreprocess`); files that
    are not plain RGB JPEGs fall back to the PIL decode (docs/encoders.md, "Decode").
    """
    dataset = _ImageDataset(paths, encoder.preprocess, load_image or default_load_image)
    if getattr(encoder.spec, "decode", "pil") == "torchvision":
        tensor_preprocess = TensorPreprocess.from_transform(getattr(encoder, "_preprocess", None))
        batches: Iterator = _torchvision_batches(paths, batch_size, tensor_preprocess, encoder.device)
    elif num_workers == 0:
        batches = _prefetched(range(0, len(dataset), batch_size), lambda s: _collate(
            [dataset[i] for i in range(s, min(s + batch_size, len(dataset)))]))
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


# --- torchvision decode path (VisionEncoderSpec.decode = "torchvision") -------------------------------------

class TensorPreprocess:
    """open_clip's eval transform on uint8 (3, H, W) tensors, on any device: Resize (shorter side, bicubic,
    antialias), CenterCrop, /255, Normalize. Built from the encoder's own torchvision ``Compose``, so the
    sizes and mean/std are the model's."""

    def __init__(self, size: int | tuple[int, int], crop: tuple[int, int], mean: tuple, std: tuple) -> None:
        self.size, self.crop = size, crop
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    @classmethod
    def from_transform(cls, transform: object) -> TensorPreprocess:
        from torchvision import transforms as T

        steps = getattr(transform, "transforms", None)
        if steps is None:
            raise ValueError("decode: torchvision needs a torchvision Compose preprocess (open_clip "
                             "encoders); use decode: pil for this encoder")
        size = crop = mean = std = None
        for t in steps:
            name = type(t).__name__
            if isinstance(t, T.Resize):
                if t.interpolation != T.InterpolationMode.BICUBIC or t.max_size is not None:
                    raise ValueError(f"decode: torchvision does not reproduce {t!r}; use decode: pil")
                size = t.size if isinstance(t.size, int) else tuple(t.size)
                size = size[0] if isinstance(size, tuple) and len(size) == 1 else size
            elif isinstance(t, T.CenterCrop):
                crop = tuple(t.size)
            elif isinstance(t, T.Normalize):
                mean, std = tuple(t.mean), tuple(t.std)
            elif name not in ("MaybeConvertMode", "MaybeToTensor", "ToTensor") and "convert" not in name:
                raise ValueError(f"decode: torchvision does not reproduce {t!r}; use decode: pil")
        if size is None or crop is None or mean is None:
            raise ValueError("decode: torchvision needs Resize + CenterCrop + Normalize in the preprocess")
        return cls(size, crop, mean, std)

    def __call__(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as F

        out = []
        for img in images:  # sizes differ per image: resize + crop one by one, on the image's device
            img = F.resize(img, self.size, interpolation=F.InterpolationMode.BICUBIC, antialias=True)
            out.append(F.center_crop(img, list(self.crop)))
        batch = torch.stack(out).float().div_(255)
        return (batch - self.mean.to(batch.device)) / self.std.to(batch.device)


def _pil_tensor(data: bytes) -> torch.Tensor:
    """The PIL path's RGB pixels (every colour rule of data/images.py) as a uint8 (3, H, W) tensor."""
    return torch.from_numpy(np.array(decode_bytes(data), dtype=np.uint8)).permute(2, 0, 1).contiguous()


def decode_batch(datas: Sequence[bytes], device: str = "cpu", max_pixels: int | None = None
                 ) -> tuple[list[int], list[torch.Tensor], dict[int, str]]:
    """Decode encoded images to uint8 (3, H, W) tensors: plain 3-channel JPEGs in ONE batched
    ``torchvision.io.decode_jpeg`` call (nvJPEG on CUDA, EXIF orientation applied), everything else (PNG,
    CMYK/greyscale JPEG, corrupt or oversized data) through the PIL path, which names the failure."""
    from torchvision.io import ImageReadMode, decode_jpeg

    limit = max_pixels or DEFAULT_MAX_PIXELS
    plain = []
    for k, d in enumerate(datas):
        wh = plain_jpeg_size(d)
        if wh is not None and 0 < wh[0] * wh[1] <= limit:
            plain.append(k)
    decoded: dict[int, torch.Tensor] = {}
    if plain:
        raw = [torch.frombuffer(bytearray(datas[k]), dtype=torch.uint8) for k in plain]
        opts = {"mode": ImageReadMode.RGB, "device": device, "apply_exif_orientation": True}
        try:
            decoded.update(zip(plain, decode_jpeg(raw, **opts), strict=True))
        except RuntimeError:  # one corrupt file fails the whole batch call: decode them one by one
            for k, r in zip(plain, raw, strict=True):
                try:
                    decoded[k] = decode_jpeg(r, **opts)
                except RuntimeError:
                    pass  # the PIL path below names the failure
    ok, tensors, errors = [], [], {}
    for k, d in enumerate(datas):
        try:
            img = decoded[k] if k in decoded else _pil_tensor(d).to(device)
        except ImageDecodeError as exc:
            errors[k] = f"{type(exc).__name__}: {exc}"
            continue
        ok.append(k)
        tensors.append(img)
    return ok, tensors, errors


def _torchvision_batches(paths: Sequence[Path], batch_size: int, preprocess: TensorPreprocess, device: str
                         ) -> Iterator[tuple[list[int], torch.Tensor | None, dict[int, str]]]:
    """Batches for the torchvision path. CPU: read + decode + preprocess one batch ahead in a background
    thread. CUDA: the reads run ahead in the thread; decode (nvJPEG, batched) and preprocess on the GPU."""
    on_gpu = device.startswith("cuda")

    def read(start: int) -> tuple[int, list[bytes | None], dict[int, str]]:
        datas: list[bytes | None] = []
        errors: dict[int, str] = {}
        for i in range(start, min(start + batch_size, len(paths))):
            try:
                datas.append(read_image_bytes(Path(paths[i])))
            except Exception as exc:  # a bad file is reported, never fatal
                errors[i] = f"{type(exc).__name__}: {exc}"
                datas.append(None)
        return start, datas, errors

    def finish(start: int, datas: list[bytes | None], errors: dict[int, str]) -> tuple:
        present = [k for k, d in enumerate(datas) if d is not None]
        ok, tensors, errs = decode_batch([datas[k] for k in present], device if on_gpu else "cpu")
        errors.update({start + present[k]: e for k, e in errs.items()})
        return [start + present[k] for k in ok], preprocess(tensors) if tensors else None, errors

    starts = range(0, len(paths), batch_size)
    if on_gpu:
        for item in _prefetched(starts, read):
            yield finish(*item)
    else:
        yield from _prefetched(starts, lambda s: finish(*read(s)))
