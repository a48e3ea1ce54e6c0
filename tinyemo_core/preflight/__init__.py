"""Preflight: everything a run needs, checked in a second, before any Prefect server or flow starts.

:func:`preflight` looks at one resolved profile (and, given a flow name, only at what that flow touches):
every dataset root exists and looks like its layout (each adapter's ``check``), every model resolves (local
path, the local Hugging Face / open_clip cache, or downloads allowed), a generator asked to caption can see
images, a served endpoint answers, CUDA is there where a device needs it, and the disk has room for the stores
the run writes. It returns every problem at once (``tinyemo check`` prints them as one table; ``tinyemo run``
stops with exit code 2 on any error). No torch, open_clip or Prefect import on this path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tinyemo_core.config import DatasetSpec, RunConfig, resolve_dataset
from tinyemo_core.data.adapters import ADAPTERS
from tinyemo_core.encoders.fingerprints import resolve_config_file
from tinyemo_core.finetune.recipes import recipe_info
from tinyemo_core.preflight import models, resources
from tinyemo_core.preflight.findings import Finding, errors
from tinyemo_core.registry import backbones
from tinyemo_core.stages.features_only import check_source
from tinyemo_core.stages.ingest import demo_data_root

__all__ = ["FLOW_PARTS", "RUN_MODELS", "SMOKE_MARKER", "Finding", "PreflightReport", "errors", "preflight"]

BASE = frozenset({"datasets", "encoder", "backbone"})
# What each flow touches (a flow not listed: the projector part, BASE). None as the flow: all the profile has.
FLOW_PARTS: dict[str, frozenset[str]] = {
    "build-dataset": BASE,
    "extract-features": frozenset({"datasets", "encoder"}),
    "embed-labels": frozenset({"datasets", "backbone"}),
    "encoder-backbone-grid": BASE | {"grid"},
    "generate-qa": frozenset({"generation"}),
    "emotic-exports": frozenset({"datasets"}),
    "finetune-reasoning": frozenset({"generation", "reasoning"}),
    "reason": BASE | {"reasoning"},
    "full-pipeline": BASE | {"generation", "reasoning", "evaluate_generated"},
    "evaluate-generated": BASE | {"evaluate_generated"},
    "neuron-atlas": BASE | {"interpret"},
    "neuron-ablation": BASE | {"interpret"},
    "bias-report": BASE | {"interpret"},
    "import-features": frozenset(),
}
ALL_PARTS = BASE | {"grid", "generation", "reasoning", "evaluate_generated", "interpret"}
SMOKE_MARKER = ".tinyemo-smoke.json"  # written at the root of every smoke store (tinyemo_core.smoke)
# evaluate_generated.model values the run resolves itself: the in-process tiny VLM, this profile's trained
# model, Fig. 9's "normal" model (docs/judging.md)
RUN_MODELS = ("tiny", "trained", "normal")


@dataclass
class PreflightReport:
    """Findings (errors and warnings), the disk estimate by store, and what was looked at."""

    findings: list[Finding] = field(default_factory=list)
    estimate: dict[str, float] = field(default_factory=dict)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not errors(self.findings)


def _parts(cfg: RunConfig, flow: str | None) -> frozenset[str]:
    return ALL_PARTS if flow is None else FLOW_PARTS.get(flow, BASE)


def _dataset_specs(cfg: RunConfig, parts: frozenset[str]) -> dict[str, DatasetSpec]:
    """The datasets the parts read: the profile's roles, plus the ones generation / evaluation name."""
    wanted: dict[str, DatasetSpec] = dict(cfg.datasets) if "datasets" in parts else {}
    named: list[str] = []
    if "generation" in parts and cfg.spec.generation is not None:
        named += cfg.spec.generation.datasets or list(cfg.datasets)
    if "evaluate_generated" in parts and cfg.spec.evaluate_generated is not None:
        named += cfg.spec.evaluate_generated.datasets
    reasoning = cfg.spec.reasoning
    if "reasoning" in parts and reasoning is not None and recipe_info(reasoning.recipe).exports == "emotic":
        named += [n for n, d in cfg.datasets.items() if d.layout == "emotic"]
    base = cfg.config_path.parent
    for name in named:
        if name in cfg.datasets:
            wanted[name] = cfg.datasets[name]
        elif name in cfg.flows.datasets:
            wanted[name] = resolve_dataset(cfg.flows.datasets[name], base)
    return wanted


def _generated_by_run(cfg: RunConfig, root: Path) -> bool:
    """Demo datasets are written by the run itself (``demo_data:``, ``label_transfer.demo_words``), so their
    roots may not exist yet."""
    words = cfg.spec.label_transfer.demo_words if cfg.spec.label_transfer is not None else None
    if words is not None and words.dataset in cfg.datasets \
            and Path(cfg.datasets[words.dataset].root).resolve() == Path(root).resolve():
        return True
    return cfg.spec.demo_data is not None and root.is_relative_to(demo_data_root(cfg.storage_root))


def check_datasets(cfg: RunConfig, specs: dict[str, DatasetSpec]) -> list[Finding]:
    found = []
    for name, spec in specs.items():
        if spec.features_only:  # no images: the feature source stands in for them (issue 21)
            found += [Finding("dataset", f"datasets.{name}.features", message,
                              f"fix the path or give the images (datasets.{name}.root)")
                      for message in check_source(spec)]
            continue
        subject, root = f"datasets.{name}", Path(spec.root)
        if _generated_by_run(cfg, root):
            continue
        adapter = ADAPTERS[spec.layout]
        if not root.exists():
            found.append(Finding("dataset", subject, f"root {root} does not exist",
                                 f"put the dataset there ({adapter.description}) or --set "
                                 f"datasets.{name}.root=/path/to/it"))
            continue
        for message in adapter.check(root):
            found.append(Finding("dataset", subject, f"{spec.layout} layout: {message}",
                                 f"{adapter.description}; fix the folder or datasets.{name}.root"))
    return found


def _heavy_encoder(cfg: RunConfig) -> bool:
    return cfg.encoder.pretrained is not None or cfg.encoder.kind == "hf"


def check_models(cfg: RunConfig, parts: frozenset[str]) -> list[Finding]:
    found: list[Finding] = []
    known = backbones(cfg.flows, cfg.storage_root)
    # features-only datasets never load the encoder (their vectors are imported)
    extracts = not all(s.features_only for s in cfg.datasets.values())
    encoders = {cfg.encoder_name} if "encoder" in parts and extracts else set()
    chosen_backbones = {cfg.backbone_name} if "backbone" in parts else set()
    if "grid" in parts and cfg.spec.grid is not None:
        encoders |= set(cfg.spec.grid.encoders)
        chosen_backbones |= set(cfg.spec.grid.backbones)
    for name in sorted(encoders):
        spec = cfg.encoder if name == cfg.encoder_name else cfg.flows.encoders[name]
        found += models.check_encoder(name, spec)
    for name in sorted(chosen_backbones):
        found += models.check_backbone(name, known[name])
    if "encoder" in parts and extracts:
        found += resources.check_device(f"encoders.{cfg.encoder_name}", "device", cfg.encoder.device,
                                        heavy=_heavy_encoder(cfg))
    return found


SERVE_HINT = ("start the server first (vLLM: `vllm serve MODEL --served-model-name NAME`, docs/generation.md;"
              " a tiny local one: `tinyemo serve-generator --tiny`), or fix base_url")


def check_generation(cfg: RunConfig) -> list[Finding]:
    gen = cfg.spec.generation
    if gen is None:
        return []
    subject, found = f"profiles.{cfg.profile}.generation", []
    if gen.backend == "transformers":
        if gen.model != "tiny":
            found += models.check_model_ref(subject, "generation.model", gen.model,
                                            revision=gen.model_revision, what="generator")
        found += resources.check_device(subject, "generation.device", gen.device, heavy=gen.model != "tiny")
    elif gen.backend == "openai":  # (the demo backend draws its answers offline)
        found += resources.check_endpoint(subject, gen.base_url, gen.model, gen.api_key_env, SERVE_HINT)
    seer, field = (gen, "generation") if gen.captioner is None else (gen.captioner, "generation.captioner")
    if gen.captioner is not None:  # EmoVIT: the captioner sees the images, generation.model only text
        cap = gen.captioner
        if cap.backend == "transformers":
            found += models.check_model_ref(subject, "generation.captioner.model", cap.model,
                                            revision=cap.model_revision, what="captioner")
            found += resources.check_device(subject, "generation.captioner.device", cap.device, heavy=True)
        else:
            found += resources.check_endpoint(subject, cap.base_url, cap.model, cap.api_key_env, SERVE_HINT)
    if models.sees_images(seer.model, seer.model_revision) is False:
        found.append(Finding(
            "generator", subject, f"{field}.model {seer.model} takes no images, but generate-qa "
            f"({gen.mode} mode) sends every image to it",
            "use a vision-language model for the image-seeing role (EmoVIT: generation.captioner; "
            "docs/generation.md)"))
    return found


def check_reasoning(cfg: RunConfig) -> list[Finding]:
    spec = cfg.spec.reasoning
    if spec is None:
        return []
    subject, found, model = f"profiles.{cfg.profile}.reasoning", [], spec.model
    if model.tiny is None:
        for fld in ("vision", "llm", "source"):
            if ref := getattr(model, fld):
                found += models.check_model_ref(subject, f"reasoning.model.{fld}", ref,
                                                revision=model.revision, what=f"reasoning {fld}")
        found += resources.check_device(subject, "reasoning (trainer)", "auto", heavy=True)
    if any(spec.stage(s).train.lora and spec.stage(s).train.lora.quantize_4bit for s in spec.stages) and (
        not resources.cuda_available()
    ):
        found.append(Finding("device", subject, "lora.quantize_4bit needs CUDA (bitsandbytes)",
                             "run on a GPU host or set lora.quantize_4bit: false"))
    if spec.reason.backend == "openai":
        found += resources.check_endpoint(subject, spec.reason.base_url, spec.reason.served_model or "",
                                          "OPENAI_API_KEY", SERVE_HINT)
    return found


def check_evaluate_generated(cfg: RunConfig, model: str | None, flow: str | None) -> list[Finding]:
    """The judged model: a saved folder, or an id served at ``base_url``. In ``full-pipeline`` the judged
    model is the one the run trains; with no flow named, problems are warnings (only evaluate-generated
    needs them)."""
    from dataclasses import replace

    spec = cfg.spec.evaluate_generated
    if spec is None:
        return []
    if model is not None:
        spec = spec.model_copy(update={"model": model})
    subject = f"profiles.{cfg.profile}.evaluate_generated"
    found = resources.check_device(subject, "evaluate_generated.device", spec.device,
                                   heavy=spec.model != "tiny")
    if getattr(spec, "load_in_4bit", False) and not resources.cuda_available():
        found.append(Finding("device", subject, "evaluate_generated.load_in_4bit needs CUDA (bitsandbytes)",
                             "run on a GPU host or --set evaluate_generated.load_in_4bit=false"))
    scorer = spec.clipscore.encoder if spec.clipscore is not None else None
    if scorer and scorer in cfg.flows.encoders:
        found += models.check_encoder(scorer, cfg.flows.encoders[scorer])
    if flow == "full-pipeline" or (spec.model in RUN_MODELS and spec.model != "tiny"):
        return found
    if spec.resolved_backend() == "openai":
        if spec.model.startswith(("/", ".", "~")):
            found.append(Finding("model", subject, f"model: {spec.model} is not an existing folder",
                                 "pass --model PATH of a saved model, or a served model id"))
        else:
            found += resources.check_endpoint(subject, spec.base_url, spec.model, spec.api_key_env,
                                              SERVE_HINT + " (or pass --model PATH of a saved model)")
    if flow is None:
        found = [replace(f, severity="warning", fix=f"{f.fix} (needed by `tinyemo run evaluate-generated`)")
                 for f in found]
    return found


def check_interpret(cfg: RunConfig) -> list[Finding]:
    spec = cfg.spec.interpret
    if spec is None:
        return []
    subject, found = f"profiles.{cfg.profile}.interpret", []
    for fld in ("pairs", "concepts"):
        value = getattr(spec, fld)
        if value is not None and not Path(value).expanduser().exists():
            found.append(Finding("interpret", subject, f"interpret.{fld}: {value} does not exist",
                                 f"point interpret.{fld} at an existing path or remove it"))
    if spec.dataset is not None and spec.dataset not in cfg.flows.datasets:
        found.append(Finding("interpret", subject, f"interpret.dataset: unknown dataset {spec.dataset!r}",
                             f"use one of {', '.join(cfg.datasets)}"))
    return found


def check_store(cfg: RunConfig, smoke: bool) -> list[Finding]:
    if not smoke and any((p / SMOKE_MARKER).exists() for p in (cfg.storage_root, *cfg.storage_root.parents)):
        return [Finding("store", str(cfg.storage_root), "storage_root is a smoke-run store (tiny random "
                        "models, generated images); a real run never writes there",
                        "point storage_root elsewhere")]
    return []


def estimate_stores(cfg: RunConfig, parts: frozenset[str], specs: dict[str, DatasetSpec]) -> dict[str, float]:
    """Bytes the run may write, by store (see :mod:`tinyemo_core.preflight.resources`)."""
    out: dict[str, float] = {}
    n_images = sum(resources.count_images(Path(s.root), s.layout) for s in specs.values()
                   if not s.features_only)  # features-only datasets extract nothing
    enc = cfg.encoder
    if "encoder" in parts:
        arch = _encoder_arch(cfg)
        width = 2 if enc.store_dtype == "float16" else 4
        out["features"] = n_images * int(arch.get("embed_dim") or 1024) * width
        if enc.patch_tokens or (cfg.spec.reasoning and cfg.spec.reasoning.patch_encoder):
            vision = arch.get("vision_cfg") or {}
            tokens = (int(vision.get("image_size", 224)) // int(vision.get("patch_size", 14))) ** 2 + 1
            out["patch tokens"] = n_images * tokens * int(vision.get("width", 1024)) * 2
    if "backbone" in parts and cfg.spec.vocabulary_table:
        conf = models.config_of(cfg.backbone.source, cfg.backbone.revision) or {}
        vocab, hidden = int(conf.get("vocab_size") or 32_000), int(conf.get("hidden_size") or 2048)
        out["vocabulary table"] = 4 * vocab * hidden
    if "reasoning" in parts and cfg.spec.reasoning is not None and cfg.spec.reasoning.model.tiny is None:
        spec = cfg.spec.reasoning
        ref = spec.model.llm or spec.model.source or ""
        params = resources.parameters_of(ref, models.config_of(ref, spec.model.revision)) or 0.0
        total = 0.0
        for stage in spec.stages:
            train = spec.stage(stage).train
            trained = params if stage == "finetune" and train.lora is None else 0.02 * params
            total += 2 * params + train.save_total_limit * (2 * params + 8 * trained)
        out["fine-tuning checkpoints"] = total
    return out


def _encoder_arch(cfg: RunConfig) -> dict:
    enc = cfg.encoder
    if enc.kind == "hf":
        conf = models.config_of(enc.model, enc.revision) or {}
        return {"embed_dim": conf.get("hidden_size") or 1024}
    if enc.config_file:
        import json

        try:
            return json.loads(resolve_config_file(enc.config_file).read_text())
        except (OSError, ValueError):
            return {}
    return models.openclip_config(enc.model) or {}


def preflight(cfg: RunConfig, flow: str | None = None, *, model: str | None = None,
              smoke: bool = False) -> PreflightReport:
    """Check what ``flow`` (None: all the profile names) needs of this machine; every problem at once."""
    parts = _parts(cfg, flow)
    report = PreflightReport(checked=sorted(parts))
    specs = _dataset_specs(cfg, parts)
    report.findings += check_store(cfg, smoke)
    report.findings += check_datasets(cfg, specs)
    report.findings += check_models(cfg, parts)
    if "generation" in parts and not (
        cfg.spec.reasoning is not None and recipe_info(cfg.spec.reasoning.recipe).exports == "emotic"
        and flow is not None
    ):
        report.findings += check_generation(cfg)
    if "reasoning" in parts:
        report.findings += check_reasoning(cfg)
    if "evaluate_generated" in parts:
        report.findings += check_evaluate_generated(cfg, model, flow)
    if "interpret" in parts:
        report.findings += check_interpret(cfg)
    report.estimate = estimate_stores(cfg, parts, specs)
    report.findings += resources.check_disk(cfg.storage_root, report.estimate)
    if smoke:  # tiny models: "real weights on a CPU" does not apply
        report.findings = [f for f in report.findings
                           if not (f.check == "device" and f.severity == "warning")]
    return report
