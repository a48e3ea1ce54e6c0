"""The bias report (TinyEmo §V-C, Fig. 11): retrieval -> neurons of the retrieved subset -> counterfactuals ->
ablation, chained for one configured query, written as Markdown + PNGs into
``activations/<run>/<dataset>/bias-<fp>/`` (renamed into place when complete)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from tinyemo_core.config import RunConfig
from tinyemo_core.fingerprint import stable_hash
from tinyemo_core.interpret.spec import InterpretSpec
from tinyemo_core.stages.interpret import explore_concepts, explore_counterfactual, explore_similar
from tinyemo_core.stages.interpret_atlas import (
    _relocate,
    _store,
    default_dataset,
    neuron_ablation,
    neuron_atlas,
    neuron_query,
    open_store,
)
from tinyemo_core.stages.labels import dataset_labels
from tinyemo_core.stages.predict import config_for_run
from tinyemo_core.store.activations import ActivationStoreKind, publish_analysis, read_analysis
from tinyemo_core.store.plan import StorePlan

Progress = Callable[[dict], None] | None


def _neuron_profile(atlas_dir: Path, neuron: int, top: int = 3) -> list[dict]:
    """A neuron's best classes (highest detection rate per attribute) from the atlas tables."""
    table = pq.read_table(atlas_dir / "detection.parquet")
    if table.num_rows == 0:
        return []
    rows = [r for r in table.filter(pc.equal(table["neuron"], neuron)).to_pylist() if r["prevalence"] < 1]
    rows.sort(key=lambda r: (-r["rate"], -r["lift"]))
    return rows[:top]


def _top_rows(atlas_dir: Path, neuron: int, n: int) -> list[str]:
    t = pq.read_table(atlas_dir / "topk.parquet")
    t = t.filter(pc.equal(t["neuron"], neuron))
    return t["image_id"].to_pylist()[:n]


def _bias_spec(cfg: RunConfig, spec: InterpretSpec | None) -> InterpretSpec:
    spec = spec or cfg.spec.interpret or InterpretSpec()
    base = cfg.config_path.parent  # relative paths in flows.yaml are relative to its folder
    return spec.model_copy(update={k: base / v for k in ("pairs", "concepts")
                                   if (v := getattr(spec, k)) is not None and not Path(v).is_absolute()})


def plan_bias(cfg: RunConfig, run_dir: Path, spec: InterpretSpec | None = None) -> StorePlan:
    """The bias-report folder for these settings: complete when it and its activation store are."""
    spec = _bias_spec(cfg, spec)
    cfg, _, store = open_store(cfg, run_dir, spec)
    key = stable_hash(spec, store.fingerprint, length=12)
    return ActivationStoreKind(cfg.storage_root).analysis(store, "bias", key)


def bias_report(cfg: RunConfig, run_dir: Path, spec: InterpretSpec | None = None, *,
                on_progress: Progress = None) -> dict[str, Any]:
    """Chain the tools for ``spec.query`` (and ``spec.pairs``) and write ``report.md``; idempotent."""
    from tinyemo_core.interpret.plots import image_grid
    spec = _bias_spec(cfg, spec)
    cfg = config_for_run(cfg, run_dir)
    src, store, _ = _store(cfg, run_dir, spec, on_progress)
    out = store.root / f"bias-{stable_hash(spec, store.fingerprint, length=12)}"
    if (done := read_analysis(out)) is not None:
        return {**done, "computed": False}
    dataset = default_dataset(cfg, spec)
    atlas = neuron_atlas(cfg, run_dir, spec)
    atlas_dir = Path(atlas["markdown"]).parent
    similar = subset = concepts = None
    if spec.query:
        similar = explore_similar(cfg, run_dir, dataset, spec.query, k=spec.k, which=spec.checkpoint)
        subset = neuron_query(cfg, run_dir, [r["image_id"] for r in similar["results"]], spec)
        if similar["kind"] in ("image", "id"):
            concepts = explore_concepts(cfg, run_dir, spec.query, dataset=dataset, concepts=spec.concepts,
                                        which=spec.checkpoint)
    followed = list(spec.neurons) or [r["neuron"] for r in (subset or [])[:3]]
    ablation = neuron_ablation(cfg, run_dir, spec)
    rows = store.rows()
    paths = dict(zip(rows["image_id"].to_pylist(), rows["path"].to_pylist(), strict=True))
    labels = dict(zip(rows["image_id"].to_pylist(), rows["label"].to_pylist(), strict=True))

    def write(tmp: Path) -> dict:
        md = [f"# Bias report: {Path(run_dir).name} on {dataset}", "",
              f"Activations: layer 0, point `{spec.point}`, {atlas['rows']} images, "
              f"{atlas['neurons']} neurons.",
              ""]
        files: list[str] = []

        def keep(path: str | Path, name: str) -> str:
            dest = tmp / name
            shutil.copyfile(path, dest)
            files.append(str(dest))
            return name

        if similar is not None:
            md += [f"## 1. Retrieval: {spec.k} nearest to {similar['kind']} `{spec.query}`", ""]
            if similar.get("grid"):  # none for a features-only dataset (no images)
                md += [f"![retrieval]({keep(similar['grid'], 'retrieval.png')})", ""]
            md += ["| rank | image | label | cosine distance |", "|---|---|---|---|"]
            md += [f"| {r['rank']} | {r['image_id'][:12]} | {r['label']} | {r['distance']:.3f} |"
                   for r in similar["results"]]
            md.append("")
        if subset is not None:
            md += ["## 2. Neurons most activated by the retrieved subset", "",
                   "| neuron | subset mean | dataset mean | z | best classes (detection rate of top-"
                   f"{atlas['top_k']}) |", "|---|---|---|---|---|"]
            for r in subset:
                prof = ", ".join(f"{p['attribute']}={p['value']} {100 * p['rate']:.0f}%"
                                 for p in _neuron_profile(atlas_dir, r["neuron"]))
                md.append(f"| {r['neuron']} | {r['subset_mean']:.2f} | {r['dataset_mean']:.2f} | "
                          f"{r['zscore']:.2f} | {prof} |")
            md.append("")
            for j in followed:
                ids = _top_rows(atlas_dir, j, spec.grid_images)
                png = image_grid([Path(src.spec.root) / paths[i] for i in ids], [labels[i] for i in ids],
                                 tmp / f"neuron-{j}-top.png", f"neuron {j}: top {len(ids)} activations")
                files.append(str(png))
                md += [f"![neuron {j}]({png.name})", ""]
        if concepts is not None:
            md += ["## Concepts closest to the query (Fig. 7)", "",
                   ", ".join(f"{c['rank']}) {c['name']} ({c['distance']:.2f})"
                             for c in concepts["top_concepts"]),
                   "", "Tokens: " + ", ".join(f"#{t['rank']} {t['name']} ({t['distance']:.2f})"
                                              for t in concepts.get("tokens", [])[:10]), ""]
        counter_res = None
        if spec.pairs:
            counter_res = explore_counterfactual(
                cfg, run_dir, spec.pairs, labels=",".join(dataset_labels(src.manifest)),
                template=src.spec.template, neurons=followed, target=spec.target, point=spec.point,
                which=spec.checkpoint, distance_threshold=spec.distance_threshold,
                flip_threshold=spec.flip_threshold, shift_share=spec.shift_share,
                out_dir=tmp / "counterfactual")
            s = counter_res["summary"]
            md += ["## 3. Robustness: counterfactual pairs", "", f"**Verdict: {s['verdict']}** "
                   f"({s['pairs']} pairs; embedding shift in {100 * s['embedding_shift_rate']:.0f}%, "
                   f"decision flipped in {100 * s['flip_rate']:.0f}%)", "",
                   "| pair | neuron changes | target distance change | prediction |", "|---|---|---|---|"]
            for p in counter_res["pairs"]:
                ch = ", ".join(f"n{x['neuron']} {x['before']:.2f}->{x['after']:.2f}" for x in p["neurons"])
                md.append(f"| {p['pair']} | {ch} | {p['target_distance_change']:+.3f} ({p['target']}) | "
                          f"{p['prediction_before']} -> {p['prediction_after']} |")
            md += [""] + [f"![{Path(f).stem}](counterfactual/{Path(f).name})"
                          for f in counter_res.get("figures", []) if f.endswith(".distances.png")] + [""]
        md += ["## Single-neuron ablation (Appendix E-A)", "",
               f"Baseline accuracy {100 * ablation['baseline_accuracy']:.2f}% on {ablation['n']} images "
               f"({', '.join(ablation['splits'])}); largest drop {100 * ablation['max_drop']:.2f} pp, "
               f"{ablation['neurons_changing_accuracy']} neurons change accuracy at all.", "",
               f"![ablation]({keep(ablation['png'], 'ablation.png')})", "",
               "## Most selective neurons (Appendix E-B)", "",
               Path(atlas["markdown"]).read_text().split("\n", 2)[2]]
        (tmp / "report.md").write_text("\n".join(md) + "\n")
        payload = {"report_dir": str(tmp), "markdown": str(tmp / "report.md"), "dataset": dataset,
                   "run": Path(run_dir).name, "files": files, "followed_neurons": followed,
                   "atlas": atlas["markdown"], "ablation": ablation["png"],
                   "artifacts": {
                       "selective": atlas["selective"][:50],
                       "ablation": ablation["largest"],
                       "similar": (similar or {}).get("results", []),
                       "subset_neurons": subset or [],
                       "counterfactual": (counter_res or {}).get("summary"),
                   }}
        return _relocate(payload, tmp, out)

    return {**publish_analysis(out, write), "computed": True}
