"""Interpretability stages, part 1: the activation store and the "explore" tools (TinyEmo §IV-G, §V-C).

Everything reads the stores; the only image forward pass is for an image FILE given as a query or pair.
Part 2 (neuron atlas, ablation, bias report): ``tinyemo_core.stages.interpret_atlas``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tinyemo_core.config import DatasetSpec, RunConfig, resolve_dataset
from tinyemo_core.data.images import load_rgb
from tinyemo_core.fingerprint import stable_hash
from tinyemo_core.interpret import probing
from tinyemo_core.interpret.counterfactual import compare_pair, find_pairs, summarise_pairs
from tinyemo_core.interpret.probing import scores_from_cosine
from tinyemo_core.stages.features import encoder_fingerprint, load_encoder, open_store
from tinyemo_core.stages.ingest import ingest_fingerprint
from tinyemo_core.stages.labels import backbone_fingerprint, embed_vocabulary
from tinyemo_core.stages.predict import config_for_run, label_set
from tinyemo_core.store.activations import (
    CONCEPTS,
    COUNTERFACTUAL,
    SIMILAR,
    ActivationStore,
    activation_fingerprint,
    activation_store_root,
    plan_rows,
    read_analysis,
)
from tinyemo_core.store.atomic import write_json
from tinyemo_core.store.features import FeatureStore
from tinyemo_core.store.labels import read_label_table
from tinyemo_core.store.manifests import manifest_complete, manifest_path, read_manifest, read_summary

Progress = Callable[[dict], None] | None
QueryKind = Literal["auto", "image", "id", "text"]


@dataclass
class DatasetSources:
    """A dataset's spec, manifest and feature store for the run's encoder."""

    name: str
    spec: DatasetSpec
    manifest: Path
    features: FeatureStore


def dataset_sources(cfg: RunConfig, dataset: str) -> DatasetSources:
    """Resolve ``dataset`` (any dataset of flows.yaml) for ``cfg``'s encoder; errors say what to run."""
    if dataset in cfg.datasets:
        spec = cfg.datasets[dataset]
    elif dataset in cfg.flows.datasets:
        spec = resolve_dataset(cfg.flows.datasets[dataset], cfg.config_path.parent)
    else:
        raise KeyError(f"unknown dataset {dataset!r}; known: {', '.join(cfg.flows.datasets)}")
    manifest = manifest_path(cfg.storage_root, dataset, ingest_fingerprint(dataset, spec))
    if not manifest_complete(manifest):
        raise FileNotFoundError(f"dataset {dataset} has no current manifest ({manifest}); run "
                                "`tinyemo run build-dataset` (or extract-features) with it in the profile")
    store = open_store(cfg.storage_root, cfg.encoder_name, dataset, encoder_fingerprint(cfg.encoder))
    if store.manifest() is None:
        raise FileNotFoundError(f"dataset {dataset} has no complete {cfg.encoder_name} feature store "
                                f"({store.root}); run `tinyemo run extract-features`")
    return DatasetSources(dataset, spec, manifest, store)


def _weights(run_dir: Path, which: str) -> Path:
    path = Path(run_dir) / f"{which}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} has no {path.name}; train the projector first")
    return path


def open_activations(run_dir: Path, src: DatasetSources, storage_root: Path, *, which: str = "best",
                     point: str = "linear", splits: Sequence[str] | None = None) -> ActivationStore:
    """The activation store of (run, dataset) for these settings (complete or not: see ``.complete()``)."""
    from tinyemo_core.interpret.activations import check_point
    check_point(point)
    fp = activation_fingerprint(_weights(run_dir, which), read_summary(src.manifest)["content_hash"],
                                src.features.manifest()["content_hash"], point, splits)
    return ActivationStore(activation_store_root(storage_root, Path(run_dir).name, src.name), fp)


def build_activations(run_dir: Path, src: DatasetSources, storage_root: Path, *, which: str = "best",
                      point: str = "linear", splits: Sequence[str] | None = None, dtype: str = "float16",
                      batch_size: int = 4096, on_progress: Progress = None) -> dict[str, Any]:
    """Layer-0 activations and projected embeddings of every row from cached features (no image is read);
    returns at once when the store is complete."""
    store = open_activations(run_dir, src, storage_root, which=which, point=point, splits=splits)
    if (done := store.marker()) is not None:
        return {"store": str(store.root), "computed": False, **done}
    from tinyemo_core.interpret.activations import forward_with_activations
    from tinyemo_core.projector.io import load_projector

    model = load_projector(run_dir, which=which)  # type: ignore[arg-type]
    ids, _ = src.features.load()
    plan = plan_rows(read_manifest(src.manifest, ok_only=True), set(ids), splits)
    order = plan.table["image_id"].to_pylist()

    def fill(acts: np.ndarray, proj: np.ndarray) -> None:
        _, feats = src.features.load(order)
        for start in range(0, len(order), batch_size):
            stop = min(start + batch_size, len(order))
            forward_with_activations(model, feats[start:stop], point,  # type: ignore[arg-type]
                                     out_activations=acts[start:stop], out_projected=proj[start:stop])
            if on_progress:
                on_progress({"done": stop, "total": len(order)})

    meta = store.write(plan.table, fill, hidden_dim=model.hidden_dim, out_dim=model.out_dim, dtype=dtype,
                       extra={"run": Path(run_dir).name, "dataset": src.name, "checkpoint": which,
                              "point": point, "splits": list(splits) if splits else None,
                              "dataset_root": str(src.spec.root),
                              "skipped_no_feature": plan.skipped_no_feature})
    return {"store": str(store.root), "computed": True, **meta}


def encode_files(cfg: RunConfig, run_dir: Path, paths: Sequence[Path], *, which: str = "best",
                 point: str = "linear") -> tuple[np.ndarray, np.ndarray]:
    """(activations, projected) of image files: the run's encoder, then the projector (the only image
    forward pass of these tools). An undecodable file raises, naming it."""
    from tinyemo_core.encoders.extract import encode_images
    from tinyemo_core.interpret.activations import forward_with_activations
    from tinyemo_core.projector.io import load_projector
    model = load_projector(run_dir, which=which)  # type: ignore[arg-type]
    encoder = load_encoder(cfg.encoder)
    if encoder.dim != model.in_dim:
        raise ValueError(f"encoder {cfg.encoder_name} gives {encoder.dim}-d features but run "
                         f"{Path(run_dir).name} expects {model.in_dim}; use the run's encoder")
    res = encode_images(encoder, [Path(p) for p in paths], batch_size=cfg.encoder.batch_size, num_workers=0,
                        progress=False, load_image=load_rgb)
    if res.errors:
        i, why = next(iter(res.errors.items()))
        raise ValueError(f"cannot read image {paths[i]}: {why}")
    return forward_with_activations(model, res.vectors, point)  # type: ignore[arg-type]


def text_vectors(cfg: RunConfig, texts: Sequence[str]) -> np.ndarray:
    """Texts embedded like labels with the run's backbone (cached in the label store)."""
    from tinyemo_core.stages.label_lookup import label_vectors

    return label_vectors(cfg.backbone, cfg.backbone_name, cfg.storage_root, list(texts)).stack(texts)


def resolve_query(query: str, store: ActivationStore, kind: QueryKind = "auto") -> tuple[str, str]:
    """(kind, query): an existing file is an image, an id the store holds is an id, anything else text."""
    if kind == "auto":
        if Path(query).expanduser().is_file():
            return "image", str(Path(query).expanduser())
        return ("id", query) if query in set(store.image_ids()) else ("text", query)
    if kind == "image" and not Path(query).expanduser().is_file():
        raise FileNotFoundError(f"query image {query} not found")
    if kind == "id":
        store.row_of([query])
    return kind, query


def query_vector(cfg: RunConfig, run_dir: Path, store: ActivationStore, query: str, kind: QueryKind = "auto",
                 *, which: str = "best") -> tuple[str, np.ndarray]:
    kind, query = resolve_query(query, store, kind)
    if kind == "id":
        return kind, np.asarray(store.projected()[store.row_of([query])[0]], np.float32)
    if kind == "image":
        return kind, encode_files(cfg, run_dir, [Path(query)], which=which)[1][0]
    return kind, text_vectors(cfg, [query])[0]


def _out_dir(store: ActivationStore, what: str, *key: Any) -> Path:
    return store.root / "explore" / f"{what}-{stable_hash(*key, length=12)}"


def explore_similar(cfg: RunConfig, run_dir: Path, dataset: str, query: str, *, k: int = 16,
                    kind: QueryKind = "auto", which: str = "best", out_dir: Path | None = None,
                    on_progress: Progress = None) -> dict[str, Any]:
    """Nearest images to QUERY by cosine in the projected space (Fig. 12): table + captioned grid PNG."""
    from tinyemo_core.interpret.plots import image_grid
    cfg = config_for_run(cfg, run_dir)
    src = dataset_sources(cfg, dataset)
    build_activations(run_dir, src, cfg.storage_root, which=which, on_progress=on_progress)
    store = open_activations(run_dir, src, cfg.storage_root, which=which)
    qkind, q = query_vector(cfg, run_dir, store, query, kind, which=which)
    ident = (Path(query).stat().st_size, Path(query).stat().st_mtime_ns) if qkind == "image" else None
    out = out_dir or _out_dir(store, "similar", qkind, query, ident, k, store.fingerprint)
    if (done := read_analysis(out, SIMILAR)) is not None and out_dir is None:
        return {**done, "computed": False}
    from tinyemo_core.index.faiss_index import cached_index, search

    # exact search (the query image itself comes first)
    index = cached_index(store.index_path(), store.projected, metric="ip", exact_threshold=1_000_000)
    cos, idx = search(index, q[None, :], min(k, store.marker()["rows"]))
    rows = store.rows().to_pylist()
    results = []
    for rank, (c, i) in enumerate(zip(cos[0].tolist(), idx[0].tolist(), strict=True), start=1):
        if i < 0:
            continue
        r = rows[i]
        results.append({"rank": rank, "image_id": r["image_id"], "label": r["label"], "path": r["path"],
                        "row": i, **{n: float(v) for n, v in scores_from_cosine(c).items()}})
    shown = Path(query).name if qkind == "image" else query
    grid = None if src.spec.features_only else image_grid(  # features only: ids and labels, no grid
        [Path(src.spec.root) / r["path"] for r in results],
        [f"{r['label']}\n{r['distance']:.2f}" for r in results], out / "similar.png",
        f"nearest to {qkind} {shown}")
    payload = {"query": query, "kind": qkind, "dataset": dataset, "run": Path(run_dir).name, "k": k,
               "results": results, "grid": None if grid is None else str(grid), "out_dir": str(out)}
    write_json(out / SIMILAR, payload)
    return {**payload, "computed": True}


def explore_concepts(cfg: RunConfig, run_dir: Path, image: str, *, dataset: str | None = None,
                     concepts: Path | None = None, top: int = 20, tokens: int = 20, which: str = "best",
                     out_dir: Path | None = None) -> dict[str, Any]:
    """Rank a concept list (bundled or ``concepts``) and the backbone's whole vocabulary for one image
    (§IV-G, Fig. 7); IMAGE is a file or (with ``dataset``) an image id."""
    cfg = config_for_run(cfg, run_dir)
    if Path(image).expanduser().is_file():
        vec = encode_files(cfg, run_dir, [Path(image).expanduser()], which=which)[1][0]
    elif dataset is None:
        raise FileNotFoundError(f"{image} is not an image file; to probe an image id pass its dataset")
    else:
        src = dataset_sources(cfg, dataset)
        build_activations(run_dir, src, cfg.storage_root, which=which)
        store = open_activations(run_dir, src, cfg.storage_root, which=which)
        vec = np.asarray(store.projected()[store.row_of([image])[0]], np.float32)
    clist = probing.load_concepts(concepts)
    cvec = text_vectors(cfg, clist.texts)
    ranked = probing.rank(vec, cvec, clist.texts, extra=[{"group": g} for g in clist.groups])
    result: dict[str, Any] = {"image": image, "run": Path(run_dir).name, "concepts_source": clist.source,
                              "concepts": ranked, "top_concepts": ranked[:top]}
    try:
        vocab = embed_vocabulary(cfg.backbone, cfg.backbone_name, cfg.storage_root,
                                 backbone_fingerprint(cfg.backbone))
        table = read_label_table(Path(vocab["table"]))
        result["tokens"] = probing.rank(vec, table.vectors, table.texts, top=tokens, bottom=2)
        result["vocabulary_size"] = len(table.texts)
    except ValueError as exc:  # hidden-state backbones have no per-token table
        result["tokens"], result["tokens_skipped"] = [], str(exc)
    if out_dir is not None:
        write_json(Path(out_dir) / CONCEPTS, result)
    return result


def explore_counterfactual(cfg: RunConfig, run_dir: Path, pairs: Path | Sequence[tuple[str, Path, Path]], *,
                           labels: str | None = None, taxonomy: str | None = None,
                           template: str | None = None, neurons: Sequence[int] = (),
                           target: str | None = None, point: str = "linear",
                           which: str = "best", distance_threshold: float = 0.02, flip_threshold: float = 0.1,
                           shift_share: float = 0.5, out_dir: Path | None = None) -> dict[str, Any]:
    """Counterfactual pairs (a folder ``original/`` + ``edited/``, or explicit (name, original, edited)):
    neuron changes, per-label distances before/after (Fig. 15), flips, and the set's verdict.

    Labels: ``labels`` / ``taxonomy`` as in ``tinyemo predict`` (default: the profile's held-in labels).
    No ``neurons``: the 3 with the largest mean absolute change over the pairs are reported."""
    from tinyemo_core.interpret.activations import check_neurons
    from tinyemo_core.interpret.plots import distance_bars, image_grid
    cfg = config_for_run(cfg, run_dir)
    items = (find_pairs(pairs) if isinstance(pairs, (str, Path))
             else [(n, Path(a), Path(b)) for n, a, b in pairs])
    words_texts = label_set(cfg, labels, taxonomy, template)
    words = [w for w, _ in words_texts]
    lvec = text_vectors(cfg, [t for _, t in words_texts])
    files = [p for _, a, b in items for p in (a, b)]
    acts, proj = encode_files(cfg, run_dir, files, which=which, point=point)
    if neurons:
        chosen = check_neurons(neurons, acts.shape[1])
    else:
        change = np.abs(acts[1::2] - acts[0::2]).mean(axis=0)
        chosen = [int(j) for j in np.lexsort((np.arange(len(change)), -change))[:3]]
    results = [compare_pair(name, acts[2 * i], acts[2 * i + 1], proj[2 * i], proj[2 * i + 1], words, lvec,
                            chosen, target, distance_threshold=distance_threshold)
               for i, (name, _a, _b) in enumerate(items)]
    summary = summarise_pairs(results, flip_threshold=flip_threshold, shift_share=shift_share)
    summary["thresholds"]["distance_threshold"] = distance_threshold
    payload: dict[str, Any] = {"run": Path(run_dir).name, "point": point, "neurons": chosen,
                               "labels": words, "pairs": results, "summary": summary}
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        figs = []
        for (name, a, b), res in zip(items, results, strict=True):
            figs.append(str(distance_bars(res, out / f"{name}.distances.png")))
            caps = [f"original\n{res['prediction_before']}", f"edited\n{res['prediction_after']}"]
            figs.append(str(image_grid([a, b], caps, out / f"{name}.pair.png", name, cols=2)))
        payload["figures"] = figs
        write_json(out / COUNTERFACTUAL, payload)
    return payload
