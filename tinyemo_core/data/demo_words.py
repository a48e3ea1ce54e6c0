"""A demo dataset whose classes LOOK like their label words: transfer through word geometry is measurable.

Each class word's label embedding (in the profile's backbone, exactly the vector the projector is trained
towards) fixes the class's appearance: the embeddings of the dataset's words are centred, reduced to their
top ``dims`` principal coordinates, and a fixed seeded orthonormal map turns those coordinates into the
coefficients of low-frequency colour patterns (a few 2-D cosines per RGB channel). Images of a class are its
pattern plus coefficient jitter and pixel noise. Words close in the backbone's space therefore look alike,
and a projector that learns "appearance -> word" on some classes can place a class it never saw near its
word. A random-init ViT keeps this structure: a linear probe from the tiny demo encoder's features to the
pattern coefficients reaches R^2 ~ 0.86 (docs/experiments.md, "Words never trained on").

The same words, vectors and arguments give byte-identical PNG files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["MARKER", "WORDS", "generate_word_demo", "word_coefficients", "word_demo_complete"]

VERSION = 1
MARKER = ".tinyemo-demo-words.json"
# 16 emotion words that are single tokens of BERT's uncased vocabulary (MiniLM's tokenizer)
WORDS = ("joy", "sadness", "anger", "fear", "disgust", "surprise", "love", "hate", "calm", "awe", "pride",
         "shame", "guilt", "hope", "grief", "envy")  # fmt: skip
FREQUENCIES = ((0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (0, 2))  # cos(pi*u*x) * cos(pi*v*y) per channel
AMPLITUDE, PIXEL_NOISE = 0.12, 0.03


def word_coefficients(vectors: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """(C, 3 * len(FREQUENCIES)) pattern coefficients, one row per word, unit overall standard deviation.

    Principal coordinates of the centred word vectors (sign fixed so each axis's largest entry is positive),
    then a fixed orthonormal map seeded by ``seed`` into the colour-pattern coefficients."""
    vectors = np.asarray(vectors, dtype=np.float64)
    n_coef = 3 * len(FREQUENCIES)
    if not 1 <= dims <= min(len(vectors) - 1, n_coef):
        raise ValueError(f"dims must be between 1 and {min(len(vectors) - 1, n_coef)} for {len(vectors)} "
                         f"words, got {dims}")
    centred = vectors - vectors.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    coords = u[:, :dims] * s[:dims]
    coords *= np.sign(coords[np.argmax(np.abs(coords), axis=0), np.arange(dims)])
    rotation = np.linalg.qr(np.random.default_rng([seed, 7]).normal(size=(n_coef, dims)))[0]
    coefs = coords @ rotation.T
    return coefs / coefs.std()


def render_pattern(coefs: np.ndarray, size: int, rng: np.random.Generator, noise: float) -> Image.Image:
    """One RGB image: the pattern of ``coefs`` (jittered by ``noise`` per coefficient) plus pixel noise."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    basis = np.stack([np.cos(np.pi * u * xx) * np.cos(np.pi * v * yy) for u, v in FREQUENCIES])
    jittered = coefs + noise * rng.normal(size=coefs.shape)
    img = 0.5 + AMPLITUDE * np.einsum("ck,kyx->yxc", jittered.reshape(3, len(FREQUENCIES)), basis)
    img += rng.normal(0, PIXEL_NOISE, img.shape)
    return Image.fromarray(np.clip(np.rint(img * 255), 0, 255).astype(np.uint8), mode="RGB")


def marker_params(words: list[str], *, seed: int, images_per_class: int, image_size: int, dims: int,
                  noise: float, vectors_id: str) -> dict:
    """What the dataset folder's marker records; a folder with other parameters is rebuilt."""
    return {"version": VERSION, "words": list(words), "seed": seed, "images_per_class": images_per_class,
            "image_size": image_size, "dims": dims, "noise": noise, "vectors": vectors_id}


def word_demo_complete(root: Path, params: dict) -> bool:
    marker = Path(root) / MARKER
    return marker.exists() and json.loads(marker.read_text(encoding="utf-8")) == params


def vectors_digest(vectors: np.ndarray) -> str:
    """Identity of the word vectors, for callers without a backbone fingerprint at hand."""
    return hashlib.sha256(np.ascontiguousarray(vectors, dtype=np.float32).tobytes()).hexdigest()[:16]


def generate_word_demo(root: Path, words: list[str], vectors: np.ndarray, *, seed: int = 0,
                       images_per_class: int = 16, image_size: int = 48, dims: int = 8, noise: float = 0.3,
                       vectors_id: str | None = None) -> dict:
    """Write ``root/<word>/<i>.png`` (the ``imagefolder`` layout; the ingest stage draws a seeded split).

    ``vectors`` (C, D): each word's label embedding. Skipped when ``root`` carries a marker with the same
    parameters; otherwise built in a temporary folder and renamed into place, marker included."""
    if len(words) != len(vectors) or len(set(words)) != len(words):
        raise ValueError("give one vector per word and no word twice")
    if len(words) < 4:
        raise ValueError(f"a word demo needs at least 4 words, got {len(words)}")
    if images_per_class < 2 or image_size < 16:
        raise ValueError("images_per_class must be >= 2 and image_size >= 16")
    root = Path(root)
    params = marker_params(words, seed=seed, images_per_class=images_per_class, image_size=image_size,
                           dims=dims, noise=noise, vectors_id=vectors_id or vectors_digest(vectors))
    if word_demo_complete(root, params):
        return {"root": str(root), "computed": False, **params}
    coefs = word_coefficients(vectors, dims, seed)
    tmp = root.with_name(f".{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for c, word in enumerate(words):
        folder = tmp / word
        folder.mkdir(parents=True)
        for i in range(images_per_class):
            rng = np.random.default_rng([seed, c, i])
            render_pattern(coefs[c], image_size, rng, noise).save(folder / f"{i:04d}.png", format="PNG")
    (tmp / MARKER).write_text(json.dumps(params, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    return {"root": str(root), "computed": True, **params}
