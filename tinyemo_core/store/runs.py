"""Projector run folders: ``runs/<encoder>__<backbone>__<fingerprint[:12]>/``.

A run folder holds ``config.json``, ``best``/``last`` safetensors weights, the resumable epoch checkpoint,
``metrics.json`` and plots. ``metrics.json`` with ``"done": true`` is the completion marker (written last by
the training loop); this module is the only reader of that marker.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tinyemo_core.store.atomic import read_json
from tinyemo_core.store.kind import PROVENANCE, StoreKind, entry, read_provenance
from tinyemo_core.store.plan import StorePlan

RUNS = "runs"
METRICS = "metrics.json"
CONFIG = "config.json"
SEPARATOR = "__"


@dataclass(frozen=True)
class RunName:
    """The parts of a run folder's name."""

    encoder: str
    backbone: str
    fingerprint: str

    def __str__(self) -> str:
        return SEPARATOR.join((self.encoder, self.backbone, self.fingerprint))


def runs_root(storage_root: Path) -> Path:
    return Path(storage_root) / RUNS


def run_dir(storage_root: Path, encoder_name: str, backbone_name: str, fingerprint: str) -> Path:
    return runs_root(storage_root) / str(RunName(encoder_name, backbone_name, fingerprint[:12]))


def parse_run_name(run: Path | str) -> RunName:
    """Split ``<encoder>__<backbone>__<fingerprint>``; raise naming the folder when it is not a run name."""
    parts = Path(run).name.split(SEPARATOR)
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"{Path(run).name!r} is not a projector run folder name "
                         "(<encoder>__<backbone>__<fingerprint>)")
    return RunName(*parts)


def read_metrics(run: Path) -> dict | None:
    """The run's ``metrics.json`` (finished or in progress), or None."""
    return read_json(Path(run) / METRICS)


def read_run_config(run: Path) -> dict | None:
    """The run's ``config.json`` (model dimensions, parameter count, training spec), or None."""
    return read_json(Path(run) / CONFIG)


def run_complete(run: Path) -> bool:
    """True when training finished (``metrics.json`` says done)."""
    return bool((read_metrics(run) or {}).get("done"))


def finished_at(run: Path) -> int:
    """Modification time (ns) of the completion marker, for "latest" ordering."""
    return (Path(run) / METRICS).stat().st_mtime_ns


def plan_run(storage_root: Path, encoder_name: str, backbone_name: str, fingerprint: str) -> StorePlan:
    path = run_dir(storage_root, encoder_name, backbone_name, fingerprint)
    return StorePlan(fingerprint, path, run_complete(path))


def list_runs(storage_root: Path, encoder: str | None = None, backbone: str | None = None,
              complete_only: bool = False) -> Iterator[Path]:
    """Run folders (sorted by name), optionally only one encoder's/backbone's or only finished ones."""
    root = runs_root(storage_root)
    if not root.is_dir():
        return
    for path in sorted(root.iterdir()):
        if not path.is_dir() or path.name.startswith("."):
            continue
        try:
            name = parse_run_name(path)
        except ValueError:
            continue
        if encoder is not None and name.encoder != encoder:
            continue
        if backbone is not None and name.backbone != backbone:
            continue
        if complete_only and not run_complete(path):
            continue
        yield path


def latest_run(storage_root: Path) -> Path:
    """The most recently finished run; raise with what to do when there is none."""
    done = list(list_runs(storage_root, complete_only=True))
    if not done:
        raise FileNotFoundError(f"no finished run under {runs_root(storage_root)}; "
                                "train one (tinyemo run train-projector)")
    return max(done, key=finished_at)


def resolve_run(run: str, storage_root: Path) -> Path:
    """``run`` as a run folder path, a folder name under ``<storage>/runs``, or ``latest``."""
    if run == "latest":
        return latest_run(storage_root)
    for candidate in (Path(run).expanduser(), runs_root(storage_root) / run):
        if candidate.is_dir():
            if not run_complete(candidate):
                raise FileNotFoundError(f"{candidate} holds no finished projector run (no done {METRICS})")
            return candidate.resolve()
    known = [p.name for p in list_runs(storage_root)]
    raise FileNotFoundError(f"run {run!r} not found (neither a folder nor under {runs_root(storage_root)}); "
                            f"known runs: {', '.join(known) or 'none'}; or pass --run latest")


def run_summary(metrics: dict | None) -> dict:
    """The headline numbers of a run's metrics.json: best epoch, its val accuracy, epochs, samples/s."""
    metrics = metrics or {}
    epochs = metrics.get("epochs") or []
    out = {k: metrics[k] for k in ("best_epoch", "best_val_acc") if isinstance(metrics.get(k), int | float)}
    if epochs:
        out["epochs"] = len(epochs)
        out["samples_per_s"] = round(sum(e.get("samples_per_s", 0.0) for e in epochs) / len(epochs), 1)
        out["final_train_loss"] = round(epochs[-1].get("train_loss", float("nan")), 4)
    return out


class RunStore(StoreKind):
    """Projector runs; ``metrics.json`` with ``"done": true`` is the marker (written last by training)."""

    kind = "run"
    folder = RUNS
    markers = (METRICS, PROVENANCE)

    def plan(self, encoder_name: str, backbone_name: str, fingerprint: str) -> StorePlan:  # type: ignore[override]
        return plan_run(self.storage_root, encoder_name, backbone_name, fingerprint)

    def complete(self, path: Path) -> bool:
        return run_complete(path)

    def read(self, plan: StorePlan) -> dict | None:
        """The train-projector descriptor of a finished run (what the training stage returns)."""
        if not run_complete(plan.path):
            return None
        return {"run_dir": str(plan.path), "computed": False, **run_summary(read_metrics(plan.path))}

    def entries(self):
        for run in list_runs(self.storage_root):
            meta = {"produced_by": read_provenance(run)}
            yield entry(self.kind, run.name, run, meta, parse_run_name(run).fingerprint,
                        complete=run_complete(run))
