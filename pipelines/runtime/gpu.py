"""GPU gating: tasks that run on a GPU carry the tag ``tinyemo-gpu`` (set by the flows only when the encoder's
device resolves to cuda). A Prefect tag-based concurrency limit on that tag, created/updated here on
serve/setup, caps how many such tasks run at once across every flow on the server, so two flows never
oversubscribe one GPU; untagged (CPU) tasks are not gated. Device monitoring: :mod:`tinyemo_core.monitor`.
"""

from __future__ import annotations

from tinyemo_core.ops_spec import GpuSpec

GPU_TAG = "tinyemo-gpu"


def ensure_gpu_limit(spec: GpuSpec | None = None) -> int:
    """Create or update the tag concurrency limit (``slots`` concurrent GPU tasks); return the slots set.

    The Prefect server upserts by tag, so calling this on every ``tinyemo serve`` applies a changed ``slots``.
    """
    from prefect.client.orchestration import get_client

    spec = spec or GpuSpec()
    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=spec.tag, concurrency_limit=spec.slots)
    return spec.slots


def gpu_tags(device: str, tag: str = GPU_TAG) -> list[str]:
    """``[tag]`` when ``device`` (``auto``, ``cuda``, ``cuda:1``, ``cpu``) is a GPU here, else ``[]``.

    Use as ``task.with_options(tags=gpu_tags(cfg.encoder.device))`` so only GPU work takes a slot.
    """
    if device == "auto":
        import torch

        return [tag] if torch.cuda.is_available() else []
    return [tag] if device.startswith("cuda") else []
