"""What one command computes once: the resolved config, and each dataset tree's listing per flow run.

- :func:`load_config_once`: ``load_config`` memoised by (config file, profile, overrides), valid while the
  config file and the store root's ``backbones.yaml`` keep their size and mtime, so the CLI and every
  (sub)flow of one command share one validated config.
- :func:`walk_once_per_flow_run`: scopes :func:`tinyemo_core.store.manifests.listing_hash` to the root flow
  run, so a flow run (subflows included) walks and stats each dataset tree at most once.
"""

from __future__ import annotations

import threading
from pathlib import Path

from tinyemo_core.config import RunConfig, load_config
from tinyemo_core.data.feature_sources import DATASETS_FILE
from tinyemo_core.store.backbones import registry_path
from tinyemo_core.store.manifests import walk_scope

_configs: dict[tuple, tuple[tuple, RunConfig]] = {}
_lock = threading.Lock()


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _stamp(path: Path, cfg: RunConfig) -> tuple:
    """flows.yaml, the backbone registry and the imported-datasets registry (``tinyemo import-features``)."""
    return _stat(path), _stat(registry_path(cfg.storage_root)), _stat(cfg.storage_root / DATASETS_FILE)


def load_config_once(config: str | Path, profile: str, overrides: list[str] | None = None) -> RunConfig:
    """``load_config`` once per (file, profile, overrides) while neither file changes."""
    path = Path(config).resolve()
    key = (str(path), profile, tuple(overrides or []))
    with _lock:
        hit = _configs.get(key)
    if hit is not None:
        stamp, cfg = hit
        if stamp == _stamp(path, cfg):
            return cfg
    cfg = load_config(path, profile, list(overrides or []))
    with _lock:
        _configs[key] = (_stamp(path, cfg), cfg)
    return cfg


_roots: dict[str, str] = {}  # flow-run id -> its root flow run's id (a subflow's costs API reads)


def _root_flow_run() -> str | None:
    """The root flow run of the current flow run (subflows included); None outside a flow run."""
    from prefect.runtime import flow_run

    run_id = flow_run.id
    if not run_id:
        return None
    if (root := _roots.get(run_id)) is None:
        root = _roots[run_id] = str(flow_run.root_flow_run_id or run_id)
    return root


def walk_once_per_flow_run() -> None:
    """Inside a flow run: memoise dataset listings for the rest of the root flow run (subflows included).
    The scope is asked on every listing, so after the flow run ends nothing is served from the memo."""
    if walk_scope.get() is not _root_flow_run:
        walk_scope.set(_root_flow_run)
