"""Label-transfer stage: generalized zero-shot learning over a dataset's own classes (docs/experiments.md).

For each fold the projector trains on the seen classes only (a run in the run store, like any other) and is
scored over ALL the dataset's label words. With ``calibration: stacking`` a margin is chosen per fold on
training data only (pseudo-unseen runs, :mod:`tinyemo_core.projector.calibration`) and stored in the fold
run's ``calibration.json``. Everything reads the cached manifests, feature stores and label table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyemo_core.config import DatasetSpec
from tinyemo_core.fingerprint import step_fingerprint
from tinyemo_core.projector.calibration import (
    choose_margin,
    gzsl_scores,
    margin_curve,
    margin_grid,
    permuted_control,
    zsl_accuracy,
)
from tinyemo_core.projector.spec import TrainingSpec
from tinyemo_core.projector.transfer_spec import LabelTransferSpec
from tinyemo_core.provenance import current
from tinyemo_core.stages.assemble import label_ids, load_split
from tinyemo_core.store.atomic import write_atomic, write_json
from tinyemo_core.store.experiments import LABEL_TRANSFER as REPORT_JSON
from tinyemo_core.store.experiments import LABEL_TRANSFER_MD as REPORT_MD
from tinyemo_core.store.experiments import ExperimentStore
from tinyemo_core.store.features import FeatureStore
from tinyemo_core.store.kind import write_provenance
from tinyemo_core.store.labels import read_label_table
from tinyemo_core.store.plan import StorePlan
from tinyemo_core.store.runs import plan_run, read_metrics, run_complete, run_summary


@dataclass(frozen=True)
class Fold:
    """One seen/unseen split of a dataset's classes, and the pseudo-unseen subsets of its seen classes."""

    dataset: str
    index: int
    seen: tuple[str, ...]
    unseen: tuple[str, ...]
    pseudo_unseen: tuple[tuple[str, ...], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_folds(dataset: str, words: list[str], spec: LabelTransferSpec) -> list[Fold]:
    """Seeded partition of ``words`` into ``spec.folds`` unseen groups (every class unseen exactly once),
    and for each fold ``spec.pseudo_splits`` seeded pseudo-unseen subsets of its seen classes."""
    words = sorted(set(words))
    if len(words) < 2 * spec.folds:
        raise ValueError(f"label_transfer.folds: dataset {dataset} has {len(words)} classes, too few for "
                         f"{spec.folds} folds with at least 2 unseen classes each; lower folds")
    order = np.random.default_rng([spec.seed]).permutation(words).tolist()
    folds = []
    for k, group in enumerate(np.array_split(np.array(order, dtype=object), spec.folds)):
        unseen = tuple(sorted(group.tolist()))
        seen = tuple(w for w in words if w not in unseen)
        pseudo = ()
        if spec.calibration == "stacking":
            count = spec.pseudo_unseen or max(2, round(len(seen) * len(unseen) / len(words)))
            if count > len(seen) - 2:
                raise ValueError(f"label_transfer.pseudo_unseen: {count} of {len(seen)} seen classes of "
                                 f"{dataset} leaves fewer than 2 to train the pseudo run on; lower it")
            rng = np.random.default_rng([spec.seed, k, 1])
            pseudo = tuple(tuple(sorted(rng.choice(seen, count, replace=False).tolist()))
                           for _ in range(spec.pseudo_splits))
        folds.append(Fold(dataset, k, seen, unseen, pseudo))
    return folds


def dataset_detail(spec: DatasetSpec, manifest_hash: str, feature_hash: str) -> dict[str, str]:
    return {"template": spec.template, "manifest": manifest_hash, "features": feature_hash}


def run_fingerprint(detail: dict[str, str], label_fingerprint: str, training: TrainingSpec,
                    classes: tuple[str, ...], with_val: bool) -> str:
    """A run trained on ``classes`` of one dataset (device excluded, as for every projector run)."""
    return step_fingerprint("label_transfer", "train", detail, label_fingerprint,
                            training.model_dump(mode="json", exclude={"device"}), sorted(classes), with_val)


def plan(storage_root: Path, encoder_name: str, backbone_name: str, fingerprint: str) -> StorePlan:
    """A fold's (or pseudo split's) projector run: a folder of the run store."""
    return plan_run(storage_root, encoder_name, backbone_name, fingerprint)


def read_run(plan: StorePlan) -> dict[str, Any] | None:
    """A finished run's descriptor (what :func:`train_run` returns), or None."""
    if not run_complete(plan.path):
        return None
    return {"run_dir": str(plan.path), "computed": False, **run_summary(read_metrics(plan.path))}


def _rows(name: str, manifest: str, store: FeatureStore, splits: tuple[str, ...], words: tuple[str, ...]
          ) -> tuple[np.ndarray, list[str]]:
    part = load_split(name, Path(manifest), store, splits)
    keep = np.array([w in set(words) for w in part.labels], dtype=bool)
    return np.asarray(part.features)[keep], [w for w, k in zip(part.labels, keep, strict=True) if k]


def train_run(name: str, spec: DatasetSpec, manifest: str, store: FeatureStore, label_table: str,
              training: TrainingSpec, classes: tuple[str, ...], out_dir: Path, *, with_val: bool
              ) -> dict[str, Any]:
    """Train on the train-split rows of ``classes`` (best epoch on their val rows when ``with_val``)."""
    from tinyemo_core.projector.train import TrainData, train_projector

    if run_complete(out_dir):
        return {"run_dir": str(out_dir), "computed": False, **run_summary(read_metrics(out_dir))}
    table = read_label_table(Path(label_table))
    cands = label_ids(table, list(classes), spec.template)
    feats, labels = _rows(name, manifest, store, ("train",), classes)
    if len(set(labels)) < 2:
        raise ValueError(f"dataset {name}: the train split holds fewer than 2 of the classes {classes}")
    train = TrainData(feats, label_ids(table, labels, spec.template), group_candidates=[cands],
                      group_names=[name])
    val = None
    if with_val:
        vf, vl = _rows(name, manifest, store, ("val",), classes)
        if vl:
            val = TrainData(vf, label_ids(table, vl, spec.template), group_candidates=[cands],
                            group_names=[name])
    train_projector(train, val, table.vectors, training, out_dir, progress=False, label_texts=table.texts)
    write_provenance(out_dir)
    return {"run_dir": str(out_dir), "computed": True, "train_rows": len(labels), "classes": list(classes),
            **run_summary(read_metrics(out_dir))}


def _scores(run_dir: Path, which: str, feats: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    from tinyemo_core.projector.io import load_projector, project

    model = load_projector(run_dir, which=which)  # type: ignore[arg-type]
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return project(model, feats) @ unit.T


def calibration_fingerprint(run_dir: Path, pseudo_runs: list[str], fold: Fold, spec: LabelTransferSpec,
                            detail: dict[str, str]) -> str:
    return step_fingerprint("label_transfer", "calibrate", Path(run_dir).name,
                            [Path(p).name for p in pseudo_runs], fold.to_dict(), spec.max_margin,
                            spec.margin_step, detail)


def plan_calibration(run_dir: Path, fingerprint: str) -> StorePlan:
    """The fold run's ``calibration.json``: complete when it records this fingerprint."""
    from tinyemo_core.projector.io import CALIBRATION, read_calibration

    done = (read_calibration(run_dir) or {}).get("fingerprint") == fingerprint
    return StorePlan(fingerprint, Path(run_dir) / CALIBRATION, done)


def read_calibration(plan: StorePlan) -> dict[str, Any] | None:
    """The fold run's calibration when it records ``plan.fingerprint``, or None."""
    from tinyemo_core.projector.io import read_calibration as read

    done = read(plan.path.parent)
    return {**done, "computed": False} if done and done.get("fingerprint") == plan.fingerprint else None


def calibrate(name: str, spec: DatasetSpec, manifest: str, store: FeatureStore, label_table: str, fold: Fold,
              pseudo_runs: list[str], run_dir: Path, fingerprint: str, transfer: LabelTransferSpec
              ) -> dict[str, Any]:
    """Choose the stacking margin of ``run_dir`` without unseen labels and store it there.

    Per pseudo split: its run trained on the fold's seen classes minus the pseudo-unseen ones scores the
    pseudo-unseen classes' train + val images and the pseudo-seen classes' val images over the fold's seen
    words; the margin maximising the mean H over splits is kept."""
    from tinyemo_core.projector.io import read_calibration, write_calibration

    if (done := read_calibration(run_dir)) is not None and done.get("fingerprint") == fingerprint:
        return {**done, "computed": False}
    table = read_label_table(Path(label_table))
    words = list(fold.seen)
    vectors = table.vectors[label_ids(table, words, spec.template)]
    margins = margin_grid(transfer.max_margin, transfer.margin_step)
    curves, splits = [], []
    for held_out, pseudo_run in zip(fold.pseudo_unseen, pseudo_runs, strict=True):
        pseudo_seen = tuple(w for w in words if w not in held_out)
        f_u, l_u = _rows(name, manifest, store, ("train", "val"), held_out)
        f_s, l_s = _rows(name, manifest, store, ("val",), pseudo_seen)
        if not l_u:
            raise ValueError(f"dataset {name}: the pseudo-unseen classes {list(held_out)} have no train or "
                             "val rows to choose the margin on")
        if not l_s:  # no validation split: the pseudo-seen classes' test rows would be test data; refuse
            raise ValueError(f"dataset {name} has no val rows for the pseudo-seen classes; calibration needs "
                             "a val split (set datasets.{name}.val_fraction > 0)")
        feats = np.concatenate([f_s, f_u])
        true = np.array([words.index(w) for w in [*l_s, *l_u]])
        scores = _scores(Path(pseudo_run), "best", feats, vectors)
        seen_cols = [words.index(w) for w in pseudo_seen]
        unseen_cols = [words.index(w) for w in held_out]
        _, _, h = margin_curve(scores, true, seen_cols, unseen_cols, margins)
        curves.append(h)
        splits.append({"pseudo_unseen": list(held_out), "run": Path(pseudo_run).name,
                       "n_pseudo_seen": len(l_s), "n_pseudo_unseen": len(l_u), "best_h": float(h.max()),
                       "h_at_zero": float(h[0])})
    margin, best_h = choose_margin(curves, margins)
    calibration = {"method": "stacking", "margin": margin, "fingerprint": fingerprint,
                   "seen_texts": sorted(set(table.texts[i] for i in label_ids(table, words, spec.template))),
                   "chosen_on": "pseudo-unseen classes held out of the seen classes (training data only)",
                   "pseudo_splits": splits, "pseudo_h": best_h,
                   "margin_grid": {"max": transfer.max_margin, "step": transfer.margin_step}}
    write_calibration(run_dir, calibration)
    return {**calibration, "computed": True}


def calibrate_from_folds(run_dir: Path, fold_calibrations: list[dict[str, Any]], fingerprint: str
                         ) -> dict[str, Any]:
    """Give the profile's own run (trained on every class) the mean of its folds' margins: each was chosen
    on training data only, for a run trained the same way on most of the same classes."""
    from tinyemo_core.projector.io import write_calibration

    margins = [c["margin"] for c in fold_calibrations]
    calibration = {"method": "stacking", "margin": float(np.mean(margins)), "fingerprint": fingerprint,
                   "chosen_on": "mean of the label-transfer folds' margins (each chosen on pseudo-unseen "
                                "training classes)", "fold_margins": margins}
    write_calibration(run_dir, calibration)
    return {**calibration, "computed": True}


def evaluate_fold(name: str, spec: DatasetSpec, manifest: str, store: FeatureStore, label_table: str,
                  fold: Fold, run_dir: Path, which: str, margin: float | None) -> dict[str, Any]:
    """Score seen classes' test images and every image of the unseen classes over all the fold's words:
    uncalibrated, with ``margin`` (when given) and the permuted-word control at that margin; ZSL too."""
    table = read_label_table(Path(label_table))
    words = sorted([*fold.seen, *fold.unseen])
    vectors = table.vectors[label_ids(table, words, spec.template)].astype(np.float64)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    f_s, l_s = _rows(name, manifest, store, ("test",), fold.seen)
    f_u, l_u = _rows(name, manifest, store, ("train", "val", "test"), fold.unseen)
    from tinyemo_core.projector.io import load_projector, project

    projected = project(load_projector(run_dir, which=which), np.concatenate([f_s, f_u]))  # type: ignore[arg-type]
    true = np.array([words.index(w) for w in [*l_s, *l_u]])
    seen = [words.index(w) for w in fold.seen]
    unseen = [words.index(w) for w in fold.unseen]
    scores = projected @ vectors.T
    row: dict[str, Any] = {
        "dataset": name, "fold": fold.index, "unseen": list(fold.unseen), "run": Path(run_dir).name,
        "n_seen": len(l_s), "n_unseen": len(l_u), "classes": len(words),
        "chance_gzsl": 1 / len(words), "chance_zsl": 1 / len(unseen),
        "uncalibrated": gzsl_scores(scores, true, seen, unseen).to_dict(),
        "zsl": zsl_accuracy(scores, true, unseen), "margin": margin,
    }
    if margin is not None:
        row["calibrated"] = gzsl_scores(scores, true, seen, unseen, margin).to_dict()
        row["control"] = permuted_control(projected, vectors, true, seen, unseen, margin).to_dict()
    return row


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean over folds of every figure (per dataset)."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == name]
        mean: dict[str, Any] = {"folds": len(mine), "zsl": float(np.mean([r["zsl"] for r in mine])),
                                "chance_gzsl": mine[0]["chance_gzsl"],
                                "chance_zsl": float(np.mean([r["chance_zsl"] for r in mine]))}
        for key in ("uncalibrated", "calibrated", "control"):
            if all(key in r for r in mine):
                mean[key] = {m: float(np.mean([r[key][m] for r in mine]))
                             for m in ("seen_acc", "unseen_acc", "h")}
        margins = [r["margin"] for r in mine if r["margin"] is not None]
        mean["margin"] = float(np.mean(margins)) if margins else None
        out[name] = mean
    return out


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def report_markdown(rows: list[dict[str, Any]], summary: dict[str, Any], settings: dict[str, Any]) -> str:
    """The per-fold table (S / U / H uncalibrated, calibrated, control; ZSL; chance) and the means."""
    lines = ["# Words never trained on: generalized zero-shot (label-transfer)", "",
             f"Training: {settings['training']}. Calibration: {settings['calibration']}. Checkpoint: "
             f"{settings['checkpoint']}.", "",
             "Per fold: the projector trains on the seen classes only; seen classes' test images and every "
             "image of the unseen classes are scored over ALL the dataset's words. S / U = mean per-class "
             "accuracy on seen / unseen classes, H = harmonic mean (Xian et al., TPAMI 2018). Calibrated = "
             "calibrated stacking (Chao et al., ECCV 2016) with the margin chosen on training data only "
             "(pseudo-unseen seen classes). Control = the same margin with the unseen words' embeddings "
             "permuted among themselves (mean over cyclic derangements). ZSL = unseen images over unseen "
             "words only. Accuracies in %.", ""]
    head = ["dataset", "fold", "unseen words", "n seen/unseen", "margin", "S", "U", "H", "S cal", "U cal",
            "H cal", "H control", "ZSL", "chance H / ZSL"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * 4 + "--:|" * (len(head) - 4)]

    def cells(r: dict, fold: str, words: str, n: str) -> list[str]:
        cal, ctl = r.get("calibrated") or {}, r.get("control") or {}
        return [r.get("dataset", ""), fold, words, n,
                "–" if r.get("margin") is None else f"{r['margin']:.3f}",
                _pct(r["uncalibrated"]["seen_acc"]), _pct(r["uncalibrated"]["unseen_acc"]),
                _pct(r["uncalibrated"]["h"]), _pct(cal.get("seen_acc")), _pct(cal.get("unseen_acc")),
                _pct(cal.get("h")), _pct(ctl.get("h")), _pct(r["zsl"]),
                f"{_pct(r['chance_gzsl'])} / {_pct(r['chance_zsl'])}"]

    for r in rows:
        lines.append("| " + " | ".join(cells(r, str(r["fold"]), ", ".join(r["unseen"]),
                                             f"{r['n_seen']}/{r['n_unseen']}")) + " |")
    for name, m in summary.items():
        lines.append("| " + " | ".join(cells({**m, "dataset": name}, "mean", "", "")) + " |")
    return "\n".join([*lines, ""])


def write_report(out_dir: Path, rows: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    """``label_transfer.md`` then ``label_transfer.json`` (written last: the folder is complete)."""
    summary = summarise(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = report_markdown(rows, summary, settings)
    write_atomic(out_dir / REPORT_MD, lambda p: p.write_text(md))
    payload = {"rows": rows, "summary": summary, "settings": settings, "produced_by": current()}
    write_json(out_dir / REPORT_JSON, payload)
    return {"out_dir": str(out_dir), "markdown": str(out_dir / REPORT_MD), "computed": True, **payload}


def plan_report(storage_root: Path, inputs: dict[str, Any]) -> StorePlan:
    """``experiments/label-transfer-<fingerprint of inputs>/``, complete once its JSON is written."""
    return ExperimentStore(storage_root).plan("label-transfer", inputs)


def read_report(plan: StorePlan) -> dict[str, Any] | None:
    """The finished report's descriptor (what :func:`write_report` returns), or None."""
    return ExperimentStore(plan.path.parent.parent).read_label_transfer(plan)
