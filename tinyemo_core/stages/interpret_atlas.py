"""Interpretability stages, part 2: neuron atlas, subset query, single-neuron ablation and the bias report
(TinyEmo §V-C, Appendix E). Each writes a folder next to the activation store it reads,
``activations/<run>/<dataset>/{atlas,ablation,bias}-<fp>/``, renamed into place when complete."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tinyemo_core.config import RunConfig
from tinyemo_core.fingerprint import stable_hash
from tinyemo_core.interpret.atlas import (
    class_matrices,
    detection_rates,
    most_selective,
    subset_neurons,
    top_k,
)
from tinyemo_core.interpret.spec import InterpretSpec
from tinyemo_core.stages.assemble import load_split
from tinyemo_core.stages.interpret import (
    DatasetSources,
    build_activations,
    dataset_sources,
    open_activations,
    text_vectors,
)
from tinyemo_core.stages.predict import config_for_run
from tinyemo_core.store.activations import (
    ActivationStore,
    ActivationStoreKind,
    publish_analysis,
    read_analysis,
)
from tinyemo_core.store.atomic import write_parquet
from tinyemo_core.store.labels import render
from tinyemo_core.store.plan import StorePlan

Progress = Callable[[dict], None] | None


def default_dataset(cfg: RunConfig, spec: InterpretSpec) -> str:
    """The configured dataset, else the profile's first zero-shot dataset, else its first held-in one."""
    if spec.dataset:
        return spec.dataset
    zero = [n for n, r in cfg.roles.items() if r == "zero_shot"]
    return (zero or list(cfg.roles))[0]


def _relocate(payload: Any, tmp: Path, out: Path) -> Any:
    """File paths written under ``tmp`` as they read after the rename onto ``out``."""
    if isinstance(payload, dict):
        return {k: _relocate(v, tmp, out) for k, v in payload.items()}
    if isinstance(payload, list):
        return [_relocate(v, tmp, out) for v in payload]
    if isinstance(payload, str) and payload.startswith(str(tmp)):
        return str(out) + payload[len(str(tmp)):]
    return payload


def _store(cfg: RunConfig, run_dir: Path, spec: InterpretSpec, on_progress: Progress
           ) -> tuple[DatasetSources, ActivationStore, dict]:
    cfg = config_for_run(cfg, run_dir)
    src = dataset_sources(cfg, default_dataset(cfg, spec))
    desc = build_activations(run_dir, src, cfg.storage_root, which=spec.checkpoint, point=spec.point,
                             splits=spec.splits, dtype=spec.dtype, on_progress=on_progress)
    store = open_activations(run_dir, src, cfg.storage_root, which=spec.checkpoint, point=spec.point,
                             splits=spec.splits)
    return src, store, desc


def open_store(cfg: RunConfig, run_dir: Path, spec: InterpretSpec
               ) -> tuple[RunConfig, DatasetSources, ActivationStore]:
    """(config for the run, dataset sources, activation store) of an analysis; nothing is built."""
    cfg = config_for_run(cfg, run_dir)
    src = dataset_sources(cfg, default_dataset(cfg, spec))
    store = open_activations(run_dir, src, cfg.storage_root, which=spec.checkpoint, point=spec.point,
                             splits=spec.splits)
    return cfg, src, store


def _atlas_key(spec: InterpretSpec) -> str:
    return stable_hash(spec.top_k, spec.per_class, spec.grid_neurons, spec.grid_images)


def _ablation_key(cfg: RunConfig, src: DatasetSources, spec: InterpretSpec) -> str:
    return stable_hash(spec.ablation_point, sorted(spec.ablation_splits), src.spec.template,
                       cfg.backbone_name)


def plan_atlas(cfg: RunConfig, run_dir: Path, spec: InterpretSpec | None = None) -> StorePlan:
    """The atlas folder for these settings: complete when it and its activation store are."""
    spec = spec or InterpretSpec()
    _, _, store = open_store(cfg, run_dir, spec)
    return ActivationStoreKind(cfg.storage_root).analysis(store, "atlas", _atlas_key(spec))


def plan_ablation(cfg: RunConfig, run_dir: Path, spec: InterpretSpec | None = None) -> StorePlan:
    """The single-neuron ablation folder for these settings: complete when it and its store are."""
    spec = spec or InterpretSpec()
    cfg, src, store = open_store(cfg, run_dir, spec)
    return ActivationStoreKind(cfg.storage_root).analysis(store, "ablation", _ablation_key(cfg, src, spec))


def neuron_atlas(cfg: RunConfig, run_dir: Path, spec: InterpretSpec | None = None, *,
                 on_progress: Progress = None) -> dict[str, Any]:
    """Top-k images per neuron, detection rates for every label and attribute, the most selective neurons
    per class and image grids for the best ones (Appendix E-B, Figs. 18-19)."""
    spec = spec or InterpretSpec()
    src, store, _ = _store(cfg, run_dir, spec, on_progress)
    out = store.root / f"atlas-{_atlas_key(spec)}"
    if (done := read_analysis(out)) is not None:
        return {**done, "computed": False}
    from tinyemo_core.interpret.plots import image_grid

    rows = store.rows()
    acts = store.activations()
    idx, val = top_k(acts, spec.top_k)
    labels = rows["labels"].to_pylist() if "labels" in rows.column_names else [[x] for x in rows["label"]]
    labels = [lab or [single] for lab, single in zip(labels, rows["label"].to_pylist(), strict=True)]
    rates = detection_rates(idx, class_matrices(labels, rows["attributes"].to_pylist()))
    selective = most_selective(rates, spec.per_class)
    ids, paths = rows["image_id"].to_pylist(), rows["path"].to_pylist()

    def write(tmp: Path) -> dict:
        h, k = idx.shape
        write_parquet(tmp / "topk.parquet", pa.table({
            "neuron": np.repeat(np.arange(h), k), "rank": np.tile(np.arange(1, k + 1), h),
            "image_id": [ids[i] for i in idx.ravel()], "activation": val.ravel()}))
        write_parquet(tmp / "detection.parquet", pa.Table.from_pylist(rates) if rates else pa.table({}))
        grids = []
        # grids for the classes a neuron singles out most against their base rate (a class every image
        # carries has lift 1 and comes last)
        best = [r for r in selective if r["rank"] == 1 and r["count"] > 1]
        best.sort(key=lambda r: (-r["lift"], -r["rate"], r["neuron"]))
        for r in best[: 0 if src.spec.features_only else spec.grid_neurons]:  # features only: no grids
            j, n_img = r["neuron"], min(spec.grid_images, k)
            grid = image_grid([Path(src.spec.root) / paths[i] for i in idx[j, :n_img]],
                              [f"{val[j, m]:.2f}" for m in range(n_img)],
                              tmp / f"neuron-{j}.png", f"neuron {j}: {r['attribute']}={r['value']} "
                              f"{100 * r['rate']:.0f}% of top {k} (prevalence {100 * r['prevalence']:.0f}%)")
            grids.append({"neuron": j, "attribute": r["attribute"], "value": r["value"], "png": str(grid)})
        md = _selective_markdown(selective, k)
        (tmp / "atlas.md").write_text(md)
        payload = {"store": str(store.root), "dataset": src.name, "run": Path(run_dir).name,
                   "point": spec.point, "top_k": k, "neurons": h, "rows": len(ids), "selective": selective,
                   "grids": grids, "markdown": str(tmp / "atlas.md")}
        return _relocate(payload, tmp, out)

    return {**publish_analysis(out, write), "computed": True}


def _selective_markdown(selective: Sequence[dict], k: int) -> str:
    lines = [f"# Most selective neurons (detection rate = share of the top {k} activations)", "",
             "| attribute | class | rank | neuron | rate | prevalence | lift |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['attribute']} | {r['value']} | {r['rank']} | {r['neuron']} | {100 * r['rate']:.0f}% | "
              f"{100 * r['prevalence']:.1f}% | {r['lift']:.1f} |" for r in selective]
    return "\n".join(lines) + "\n"


def neuron_query(cfg: RunConfig, run_dir: Path, image_ids: Sequence[str], spec: InterpretSpec | None = None,
                 *, top: int | None = None) -> list[dict]:
    """Neurons most activated by a chosen subset of the dataset's images (§V-C step 2)."""
    spec = spec or InterpretSpec()
    _src, store, _ = _store(cfg, run_dir, spec, None)
    return subset_neurons(store.activations(), store.row_of(list(image_ids)), top or spec.subset_top)


def neuron_ablation(cfg: RunConfig, run_dir: Path, spec: InterpretSpec | None = None, *,
                    on_progress: Progress = None) -> dict[str, Any]:
    """Accuracy change when each hidden neuron alone is zeroed (Appendix E-A, Fig. 17), closed form."""
    spec = spec or InterpretSpec()
    cfg = config_for_run(cfg, run_dir)
    src, store, _ = _store(cfg, run_dir, spec, on_progress)
    out = store.root / f"ablation-{_ablation_key(cfg, src, spec)}"
    if (done := read_analysis(out)) is not None:
        return {**done, "computed": False}
    from tinyemo_core.interpret.ablation import ablate_all
    from tinyemo_core.interpret.plots import ablation_bars
    from tinyemo_core.projector.io import load_projector

    split = load_split(src.name, src.manifest, src.features, tuple(spec.ablation_splits))
    if not split.image_ids:
        raise ValueError(f"dataset {src.name} has no rows in splits {spec.ablation_splits}; set "
                         "interpret.ablation_splits (e.g. [train, val, test])")
    lvec = text_vectors(cfg, [render(src.spec.template, w) for w in split.candidates])
    y = np.array([split.candidates.index(w) for w in split.labels])
    model = load_projector(run_dir, which=spec.checkpoint)
    res = ablate_all(model, split.features, y, lvec, spec.ablation_point)  # type: ignore[arg-type]

    def write(tmp: Path) -> dict:
        rows = res.rows()
        write_parquet(tmp / "ablation.parquet", pa.Table.from_pylist(rows))
        png = ablation_bars(res.neurons, res.delta, tmp / "ablation.png",
                            f"{src.name}: single-neuron ablation "
                            f"(baseline {100 * res.baseline_accuracy:.2f}%)")
        largest = sorted(rows, key=lambda r: (-abs(r["delta"]), r["neuron"]))[:20]
        payload = {"dataset": src.name, "run": Path(run_dir).name, "point": spec.ablation_point,
                   "splits": spec.ablation_splits, "n": res.n, "baseline_accuracy": res.baseline_accuracy,
                   "max_drop": float(-res.delta.min()), "max_gain": float(res.delta.max()),
                   "neurons_changing_accuracy": int((res.delta != 0).sum()), "largest": largest,
                   "png": str(png)}
        return _relocate(payload, tmp, out)

    return {**publish_analysis(out, write), "computed": True}
