"""Evaluation folders inside a run: ``runs/<run>/eval-<fingerprint[:12]>/``.

The folder is written under a temporary name and renamed into place, so ``report.json`` existing means the
whole report (tables, predictions, plots) is there. This module is the only reader of that marker.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tinyemo_core.store.atomic import read_json, staged_dir
from tinyemo_core.store.kind import PROVENANCE, StoreKind, entry, read_provenance, subdirs
from tinyemo_core.store.plan import StorePlan
from tinyemo_core.store.runs import list_runs, parse_run_name

PREFIX = "eval-"
REPORT = "report.json"
REPORT_MD = "report.md"


def evaluation_dir(run_dir: Path, fingerprint: str) -> Path:
    return Path(run_dir) / f"{PREFIX}{fingerprint[:12]}"


def generated_evaluation_dir(storage_root: Path, model_dir: str, fingerprint: str) -> Path:
    """A generated-answer evaluation: ``evaluations/generated/<model>-<fp8>/<fingerprint[:12]>/``."""
    return Path(storage_root) / "evaluations" / "generated" / model_dir / fingerprint[:12]


def evaluation_complete(path: Path) -> bool:
    return (Path(path) / REPORT).exists()


def read_report(path: Path) -> dict | None:
    """The evaluation's ``report.json``, or None when the evaluation is incomplete."""
    return read_json(Path(path) / REPORT)


def report_markdown(path: Path) -> str | None:
    """The evaluation's ``report.md`` (what a flow publishes as an artifact), or None."""
    md = Path(path) / REPORT_MD
    return md.read_text() if md.exists() else None


def plan_evaluation(run_dir: Path, fingerprint: str) -> StorePlan:
    path = evaluation_dir(run_dir, fingerprint)
    return StorePlan(fingerprint, path, evaluation_complete(path))


def list_evaluations(run_dir: Path) -> Iterator[Path]:
    """Every evaluation folder of a run, complete or not (sorted by name)."""
    run_dir = Path(run_dir)
    if run_dir.is_dir():
        yield from (p for p in sorted(run_dir.glob(f"{PREFIX}*")) if p.is_dir())


def staged_evaluation(out_dir: Path):
    """Write an evaluation into a hidden temporary folder, renamed to ``out_dir`` when the block succeeds."""
    return staged_dir(out_dir)


def newest_reports(storage_root: Path, encoder_name: str) -> dict[str, dict]:
    """Newest complete evaluation per backbone for one encoder: {backbone: {"run", "report", "summary"}}."""
    out: dict[str, tuple[float, dict]] = {}
    for run in list_runs(storage_root, encoder=encoder_name):
        backbone = parse_run_name(run).backbone
        for ev in list_evaluations(run):
            data = read_report(ev)
            if data is None:
                continue
            mtime = (ev / REPORT).stat().st_mtime
            if backbone not in out or mtime > out[backbone][0]:
                out[backbone] = (mtime, {"run": run.name, "report": str(ev / REPORT),
                                         "summary": data.get("summary", {})})
    return {b: v for b, (_, v) in sorted(out.items())}


class EvaluationStore(StoreKind):
    """Projector evaluations inside their run (``runs/<run>/eval-<fp12>/``); ``report.json`` is the marker."""

    kind = "evaluation"
    folder = "runs"
    markers = (REPORT, PROVENANCE)

    def plan(self, run_dir: Path, fingerprint: str) -> StorePlan:  # type: ignore[override]
        return plan_evaluation(run_dir, fingerprint)

    def complete(self, path: Path) -> bool:
        return evaluation_complete(path)

    def read(self, plan: StorePlan) -> dict | None:
        """The evaluate descriptor of a complete report (what the evaluate stage returns)."""
        data = read_report(plan.path)
        if data is None:
            return None
        return {"report_dir": str(plan.path), "computed": False, "summary": data.get("summary", {})}

    def entries(self):
        for run in list_runs(self.storage_root):
            for ev in list_evaluations(run):
                meta = {"produced_by": read_provenance(ev)}
                yield entry(self.kind, f"{run.name}/{ev.name}", ev, meta, ev.name.removeprefix(PREFIX),
                            complete=evaluation_complete(ev))


class GeneratedEvaluationStore(EvaluationStore):
    """Generated-answer reports: ``evaluations/generated/<model>-<fp8>/<fp12>/`` (``report.json`` marker)."""

    kind = "generated-evaluation"
    folder = "evaluations/generated"

    def plan(self, model_dir: str, fingerprint: str) -> StorePlan:  # type: ignore[override]
        path = generated_evaluation_dir(self.storage_root, model_dir, fingerprint)
        return StorePlan(fingerprint, path, evaluation_complete(path))

    def entries(self):
        for model in subdirs(self.root):
            for ev in subdirs(model):
                meta = {"produced_by": read_provenance(ev)}
                yield entry(self.kind, f"{model.name}/{ev.name}", ev, meta, ev.name,
                            complete=evaluation_complete(ev))
