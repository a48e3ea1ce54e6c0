"""Machine checks before a run: CUDA, a served endpoint, free disk space against the stores a run writes.

The disk estimate is deliberately rough (it says which store dominates): pooled features = images x
embedding width x bytes per value; patch tokens = images x tokens x vision width x 2; the label vocabulary
table = vocabulary x hidden x 4; each fine-tuning stage = the final model (2 bytes a parameter) plus
``save_total_limit`` checkpoints (weights + AdamW's two fp32 moments for the trained parameters).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import time
from pathlib import Path

from tinyemo_core.data.images import IMAGE_EXTENSIONS
from tinyemo_core.preflight.findings import Finding

# Published image counts per layout, used when a root is absent or too big to count quickly (docs/datasets.md)
PUBLISHED_IMAGES = {
    "emoset": 118_102,      # EmoSet-118K (Yang et al. 2023)
    "webemo": 268_000,      # WEBEmo (Panda et al. 2018), ~268k
    "emotionroi": 1_980,    # EmotionROI (Peng et al. 2016)
    "emotion6": 1_980,      # Emotion6 (Peng et al. 2015)
    "fi": 23_308,           # FI (You et al. 2016)
    "artphoto": 806,        # ArtPhoto (Machajdik & Hanbury 2010)
    "abstract": 280,        # Abstract (Machajdik & Hanbury 2010)
    "unbiasedemo": 3_045,   # UnbiasedEmo (Panda et al. 2018)
    "emotic": 23_571,       # EMOTIC (Kosti et al. 2019), 34,320 annotated people
}  # fmt: skip
COUNT_BUDGET_S = 0.4  # per dataset: beyond this the walk stops and the published size is used


@functools.cache
def cuda_available() -> bool:
    """True when a CUDA device is usable. Without an NVIDIA driver on the machine this answers at once
    (no torch import); with one, torch confirms."""
    if not (Path("/proc/driver/nvidia/version").exists() or any(Path("/dev").glob("nvidia[0-9]*"))):
        return False
    import torch

    return bool(torch.cuda.is_available())


def needs_cuda(device: str | None) -> bool:
    return bool(device) and str(device).startswith("cuda")


def check_device(subject: str, field: str, device: str, *, heavy: bool) -> list[Finding]:
    """``cuda*`` without CUDA is an error; ``auto`` with real (large) weights and no CUDA a warning."""
    if needs_cuda(device) and not cuda_available():
        return [Finding("device", subject, f"{field}: {device} but this machine has no usable CUDA device",
                        f"run on a GPU host, or --set {field}=cpu (slow)")]
    if device == "auto" and heavy and not cuda_available():
        return [Finding("device", subject, f"{field}: auto -> CPU here (no CUDA device); real weights on a "
                        "CPU run for hours or days", "run on a GPU host (this is fine for a smoke run)",
                        "warning")]
    return []


# --- served endpoints ------------------------------------------------------------------------------------
def check_endpoint(subject: str, base_url: str, model: str, api_key_env: str,
                   start_hint: str) -> list[Finding]:
    """``GET {base_url}/models`` answers and lists ``model`` (2 s timeout)."""
    import httpx

    headers = {}
    if key := os.environ.get(api_key_env):
        headers["Authorization"] = f"Bearer {key}"
    elif not re.match(r"https?://(127\.0\.0\.1|localhost|\[::1\])[:/]", base_url):
        return [Finding("endpoint", subject, f"{base_url} needs an API key and ${api_key_env} is not set",
                        f"export {api_key_env}=... (or set api_key_env to the variable holding it)")]
    url = base_url.rstrip("/") + "/models"
    try:
        response = httpx.get(url, headers=headers, timeout=2.0)
        response.raise_for_status()
        served = [str(m.get("id")) for m in response.json().get("data", []) if isinstance(m, dict)]
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        return [Finding("endpoint", subject, f"no OpenAI-compatible server answers at {url} "
                        f"({type(exc).__name__})", start_hint)]
    if served and model not in served:
        return [Finding("endpoint", subject, f"{base_url} serves {', '.join(served[:5])}, not {model!r}",
                        f"set the model to one of those ids, or serve {model} (--served-model-name {model})")]
    return []


# --- disk --------------------------------------------------------------------------------------------------
def count_images(root: Path, layout: str) -> int:
    """Image files under ``root`` (exact when the walk ends within COUNT_BUDGET_S), else the published
    size."""
    published = PUBLISHED_IMAGES.get(layout, 0)
    if not root.is_dir():
        return published
    deadline, n = time.monotonic() + COUNT_BUDGET_S, 0
    for _, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        n += sum(1 for f in files if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS)
        if time.monotonic() > deadline:
            return max(n, published)
    return n


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([bBmM])(?![a-zA-Z])")


def parameters_of(ref: str, config: dict | None) -> float | None:
    """Rough parameter count from a config.json (decoder LMs) or, failing that, the size in the name."""
    text = config.get("text_config") if config and isinstance(config.get("text_config"), dict) else config
    if text and text.get("hidden_size") and text.get("num_hidden_layers"):
        h, n = float(text["hidden_size"]), float(text["num_hidden_layers"])
        inter = float(text.get("intermediate_size") or 4 * h)
        vocab = float(text.get("vocab_size") or 32_000)
        return n * (4 * h * h + 3 * h * inter) + 2 * vocab * h
    if "phi-2" in ref.lower():
        return 2.7e9
    if m := _SIZE.search(ref.split("/")[-1]):
        return float(m.group(1)) * (1e9 if m.group(2).lower() == "b" else 1e6)
    return None


def free_bytes(path: Path) -> int:
    """Free space on the filesystem that will hold ``path`` (its nearest existing parent)."""
    probe = Path(path).resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} TB"


def check_disk(storage_root: Path, estimate: dict[str, float]) -> list[Finding]:
    """An error when the estimated stores exceed the free space, a warning above 80 % of it."""
    total = sum(estimate.values())
    if total <= 0:
        return []
    free = free_bytes(storage_root)
    parts = ", ".join(f"{k} {human(v)}" for k, v in sorted(estimate.items(), key=lambda kv: -kv[1]) if v)
    if total > free:
        return [Finding("disk", str(storage_root), f"the run writes about {human(total)} ({parts}); "
                        f"{human(free)} free", "free space, or point storage_root at a larger disk "
                        "(--set storage_root=/big/disk/storage)")]
    if total > 0.8 * free:
        return [Finding("disk", str(storage_root), f"the run writes about {human(total)} ({parts}); only "
                        f"{human(free)} free", "free space or use a larger disk", "warning")]
    return []
