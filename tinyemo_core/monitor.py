"""Device monitoring for long stages: GPU memory and utilisation through NVML, process RSS on CPU hosts.

:class:`DeviceMonitor` samples NVML (nvidia-ml-py, the ``gpu`` extra) in a background thread while a stage
runs and reports the device name, peak GPU memory and utilisation for table artifacts; without a GPU it
reports ``"cpu"`` and the process's peak resident memory. No Prefect import: the pipeline publishes what it
returns.
"""

from __future__ import annotations

import resource
import sys
import threading
from dataclasses import dataclass, field
from typing import Any


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def _nvml():
    """The initialised ``pynvml`` module, or ``None`` without nvidia-ml-py or without an NVIDIA driver/GPU."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        if pynvml.nvmlDeviceGetCount() == 0:
            return None
    except pynvml.NVMLError:
        return None
    return pynvml


def device_name(index: int = 0) -> str:
    """The GPU's product name (``"NVIDIA H100 80GB HBM3"``), or ``"cpu"`` when no GPU is visible."""
    nvml = _nvml()
    if nvml is None:
        return "cpu"
    name = nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(index))
    return name.decode() if isinstance(name, bytes) else str(name)


@dataclass
class DeviceMonitor:
    """Sample GPU memory and utilisation in a background thread (``with DeviceMonitor() as mon: ...``).

    ``summary()`` gives the row fields for table artifacts: ``device``, ``peak_gpu_memory_mb`` (whole device,
    as NVML sees it: other processes included), ``peak_torch_memory_mb`` (this process's CUDA allocator peak),
    ``gpu_util_mean``/``gpu_util_peak`` (percent). On a CPU host every GPU field is ``None``.
    """

    index: int = 0
    interval_s: float = 0.5
    _samples: list[tuple[int, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _name: str = "cpu"

    def __enter__(self) -> DeviceMonitor:
        nvml = _nvml()
        if nvml is not None:
            handle = nvml.nvmlDeviceGetHandleByIndex(self.index)
            self._name = device_name(self.index)
            _reset_torch_peak()
            self._thread = threading.Thread(target=self._sample, args=(nvml, handle), daemon=True)
            self._thread.start()
        return self

    def _sample(self, nvml, handle) -> None:
        while True:
            try:
                mem = nvml.nvmlDeviceGetMemoryInfo(handle).used
                util = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
                self._samples.append((int(mem), int(util)))
            except nvml.NVMLError:
                return
            if self._stop.wait(self.interval_s):
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def summary(self) -> dict[str, Any]:
        if not self._samples:
            return {"device": self._name, "peak_gpu_memory_mb": None,
                    "peak_torch_memory_mb": _torch_peak_mb(), "gpu_util_mean": None, "gpu_util_peak": None,
                    "peak_rss_mb": peak_rss_mb()}
        mems, utils = zip(*self._samples, strict=True)
        return {"device": self._name, "peak_gpu_memory_mb": round(max(mems) / 2**20, 1),
                "peak_torch_memory_mb": _torch_peak_mb(),
                "gpu_util_mean": round(sum(utils) / len(utils), 1), "gpu_util_peak": max(utils),
                "peak_rss_mb": peak_rss_mb()}


def _reset_torch_peak() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
    except ImportError:
        pass


def _torch_peak_mb() -> float | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)
