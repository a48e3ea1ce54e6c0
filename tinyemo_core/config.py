"""The typed model of flows.yaml. Everything is validated before any step runs; errors name the field's path.

flows.yaml holds named registries (``encoders``, ``backbones``, ``datasets``) and ``profiles`` that pick from
them. ``--set key=value`` overrides apply to the chosen profile (``training.epochs=3``,
``backbone=minilm``) or,
for the registries and ``storage_root``, to the top level (``datasets.demo_emoroi.root=/data/x``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from tinyemo_core.data.adapters import ADAPTERS
from tinyemo_core.data.feature_sources import FeatureSourceSpec, imported_datasets
from tinyemo_core.encoders.specs import BackboneSpec, VisionEncoderSpec
from tinyemo_core.errors import ConfigError
from tinyemo_core.finetune.spec import ReasoningSpec, conditional_mismatch
from tinyemo_core.generate.spec import GenerationSpec
from tinyemo_core.interpret.spec import InterpretSpec
from tinyemo_core.judge.spec import EvaluateGeneratedSpec
from tinyemo_core.ops_spec import NAME_PATTERN, DeploymentSpec, GpuSpec, TaskRunnerSpec
from tinyemo_core.projector.spec import TrainingSpec
from tinyemo_core.projector.transfer_spec import LabelTransferSpec
from tinyemo_core.registry import backbones

LAYOUTS = tuple(ADAPTERS)  # one adapter per published layout + generic folders/CSV/JSONL
TOP_LEVEL_KEYS = ("storage_root", "encoders", "backbones", "datasets", "deployments", "task_runner", "gpu",
                  "profiles")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetSpec(Strict):
    layout: Literal[LAYOUTS]  # type: ignore[valid-type]
    root: Path | None = None  # the images; without them (None or absent) `features` makes it features-only
    features: FeatureSourceSpec | None = None  # vectors computed elsewhere (docs/datasets.md)
    taxonomy: str | None = None
    template: str = "{label}"  # the paper used "a scene evoking {emotion} to viewers" for Abstract only
    synonyms: bool = False  # Appendix C synonym augmentation (WEBEmo in the paper)
    seed: int = 0  # seeded, stratified split where none is published
    val_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    # Which images a ZERO-SHOT role scores (held-in datasets are always scored on their test split): "all" =
    # every decodable image, never trained on (the authors' protocol for ArtPhoto, Abstract, UnbiasedEmo);
    # "test" = the test split only (Emotion6 / FI as published; held-in datasets left out of a Table III row).
    zero_shot_split: Literal["all", "test"] = "all"

    @model_validator(mode="after")
    def _images_or_features(self) -> DatasetSpec:
        if self.root is None and self.features is None:
            raise ValueError("give `root` (the images) or `features` (a feature source), or both")
        return self

    @property
    def features_only(self) -> bool:
        """No image at hand: a feature source and no image root (unset or not there yet)."""
        return self.features is not None and (self.root is None or not Path(self.root).exists())


class ExtractionSpec(Strict):
    shard_size: int = Field(10_000, gt=0)
    # shards are grouped into at most this many tasks per flow run (memory flat in the number of shards;
    # every shard is still written atomically by name, so a killed run resumes shard by shard)
    max_tasks: int = Field(256, gt=0)
    retries: int = Field(2, ge=0)
    ingest_workers: int = Field(4, gt=0)


class EvaluationSpec(Strict):
    checkpoint: Literal["best", "last"] = "best"
    tsne: bool = True


class DemoDataSpec(Strict):
    seed: int = 0
    images_per_class: int = Field(10, gt=1)
    image_size: int = Field(64, ge=16)


class GridSpec(Strict):
    """The encoder x backbone grid of ``encoder-backbone-grid`` for this profile (TinyEmo Table IV)."""

    encoders: list[str] = Field(min_length=1)
    backbones: list[str] = Field(min_length=1)


class ProfileSpec(Strict):
    description: str = ""
    held_in: list[str] = Field(min_length=1)
    zero_shot: list[str] = []
    encoder: str
    backbone: str
    demo_data: DemoDataSpec | None = None  # generate the bundled demo datasets before ingesting
    vocabulary_table: bool = False  # also embed the backbone's whole vocabulary (interpretability, §IV-G)
    extraction: ExtractionSpec = ExtractionSpec()
    training: TrainingSpec = TrainingSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    # feature stores larger than this train/evaluate from np.memmap files instead of RAM (None: always RAM);
    # not part of any fingerprint: the result is the same either way (docs/stores.md)
    memory_cap_mb: int | None = Field(None, gt=0)
    generation: GenerationSpec | None = None
    evaluate_generated: EvaluateGeneratedSpec | None = None  # evaluate-generated (docs/judging.md)
    interpret: InterpretSpec | None = None  # neuron atlas / ablation / bias report (docs/interpretability.md)
    grid: GridSpec | None = None  # default encoders/backbones of encoder-backbone-grid (Table IV)
    reasoning: ReasoningSpec | None = None  # fine-tuning + conditional reasoning (docs/reasoning.md)
    label_transfer: LabelTransferSpec | None = None  # generalized zero-shot flow (docs/experiments.md)

    @model_validator(mode="after")
    def _trained_as_run(self) -> ProfileSpec:
        """A TinyEmo stage-2 model must be trained on the prompt it is run with (§III-C, Eq. 5)."""
        if problem := conditional_mismatch(self.reasoning, self.generation):
            raise ValueError(problem)
        return self


class FlowsFile(Strict):
    storage_root: Path = Path("storage")
    encoders: dict[str, VisionEncoderSpec]
    backbones: dict[str, BackboneSpec]
    datasets: dict[str, DatasetSpec]
    deployments: dict[Annotated[str, StringConstraints(pattern=NAME_PATTERN)], DeploymentSpec] = {}
    task_runner: TaskRunnerSpec = TaskRunnerSpec()
    gpu: GpuSpec = GpuSpec()
    profiles: dict[str, ProfileSpec]


class RunConfig(Strict):
    """One profile, resolved: absolute paths, named models and datasets looked up."""

    config_path: Path
    profile: str
    storage_root: Path
    encoder_name: str
    encoder: VisionEncoderSpec
    backbone_name: str
    backbone: BackboneSpec
    datasets: dict[str, DatasetSpec]
    roles: dict[str, Literal["held_in", "zero_shot"]]
    spec: ProfileSpec
    flows: FlowsFile


def _parse_value(raw: str, key: str = "") -> Any:
    try:
        return yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"--set {key}={raw}: the value is not valid YAML ({first}); quote it, "
                          f"e.g. --set '{key}=\"{raw}\"'") from None


def apply_overrides(data: dict, profile: str, overrides: list[str]) -> dict:
    """Apply ``key=value`` overrides (values parsed as YAML) to the profile or the top level."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. training.epochs=3")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if parts[0] not in TOP_LEVEL_KEYS:
            parts = ["profiles", profile, *parts]
        node = data
        for p in parts[:-1]:
            if not isinstance(node.setdefault(p, {}), dict):
                raise ConfigError(f"--set {key}: {p} is not a mapping")
            node[p] = dict(node[p])  # YAML anchors share mappings between profiles: change only this one
            node = node[p]
        node[parts[-1]] = _parse_value(raw, key)
    return data


def _format_errors(exc: ValidationError, prefix: tuple = ()) -> str:
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in (*prefix, *err["loc"]))
        lines.append(f"{path}: {err['msg']}")
    return "invalid flows.yaml:\n  " + "\n  ".join(lines)


def _resolve_path(base: Path, p: Path) -> Path:
    return p if p.is_absolute() else (base / p).resolve()


def load_flows(path: Path, overrides: list[str] | None = None, profile: str = "demo") -> FlowsFile:
    """Read and validate flows.yaml (with overrides applied), without resolving a profile."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} not found; pass --config PATH")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    data = apply_overrides(data, profile, overrides or [])
    try:
        return FlowsFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None


def _label_transfer_problems(spec: ProfileSpec, roles: dict[str, str], flows: FlowsFile, where: str
                             ) -> list[str]:
    """``label_transfer`` names datasets of the profile; its word demo writes an imagefolder dataset with
    enough words for the folds (docs/experiments.md)."""
    transfer, where = spec.label_transfer, f"{where}.label_transfer"
    if transfer is None:
        return []
    out = [f"{where}.datasets.{i}: {name!r} is not a dataset of this profile (its datasets: "
           f"{', '.join(roles)})" for i, name in enumerate(transfer.datasets) if name not in roles]
    demo = transfer.demo_words
    if demo is not None:
        if demo.dataset not in roles:
            out.append(f"{where}.demo_words.dataset: {demo.dataset!r} is not a dataset of this profile")
        elif flows.datasets[demo.dataset].layout != "imagefolder":
            out.append(f"{where}.demo_words.dataset: {demo.dataset} must have layout imagefolder")
        if len(demo.words) < 2 * transfer.folds:
            out.append(f"{where}.folds: {transfer.folds} folds need at least {2 * transfer.folds} words "
                       f"(demo_words has {len(demo.words)}); lower folds or add words")
    return out


def load_config(
    path: Path | str = "flows.yaml", profile: str = "demo", overrides: list[str] | None = None
) -> RunConfig:
    """Validate flows.yaml and resolve one profile into a :class:`RunConfig`."""
    path = Path(path).resolve()
    flows = load_flows(path, overrides, profile)
    if profile not in flows.profiles:
        raise ConfigError(f"profiles.{profile}: no such profile (known: {', '.join(flows.profiles)})")
    spec = flows.profiles[profile]
    where = f"profiles.{profile}"
    base = path.parent
    storage_root = _resolve_path(base, flows.storage_root)
    known_backbones = backbones(flows, storage_root)  # flows.yaml + `tinyemo backbone add` entries
    _add_imported_datasets(flows, storage_root)  # + features-only datasets `tinyemo import-features` recorded
    problems = []
    if spec.encoder not in flows.encoders:
        problems.append(
            f"{where}.encoder: unknown encoder {spec.encoder!r} (known: {', '.join(flows.encoders)})"
        )
    if spec.backbone not in known_backbones:
        problems.append(
            f"{where}.backbone: unknown backbone {spec.backbone!r} (known: {', '.join(known_backbones)})"
        )
    for i, name in enumerate(spec.grid.encoders if spec.grid else []):
        if name not in flows.encoders:
            problems.append(f"{where}.grid.encoders.{i}: unknown encoder {name!r}")
    for i, name in enumerate(spec.grid.backbones if spec.grid else []):
        if name not in known_backbones:
            problems.append(f"{where}.grid.backbones.{i}: unknown backbone {name!r}")
    clip = spec.evaluate_generated.clipscore if spec.evaluate_generated else None
    if clip is not None and clip.encoder is not None and clip.encoder not in flows.encoders:
        problems.append(f"{where}.evaluate_generated.clipscore.encoder: unknown encoder {clip.encoder!r} "
                        f"(known: {', '.join(flows.encoders)})")
    roles: dict[str, Literal["held_in", "zero_shot"]] = {}
    for role in ("held_in", "zero_shot"):
        for i, name in enumerate(getattr(spec, role)):
            if name not in flows.datasets:
                problems.append(
                    f"{where}.{role}.{i}: unknown dataset {name!r} (known: {', '.join(flows.datasets)})"
                )
            elif name in roles:
                problems.append(f"{where}.{role}.{i}: dataset {name!r} listed twice")
            roles[name] = role  # type: ignore[assignment]
    problems += _label_transfer_problems(spec, roles, flows, where)
    if problems:
        raise ConfigError("invalid flows.yaml:\n  " + "\n  ".join(problems))
    datasets = {n: resolve_dataset(flows.datasets[n], base) for n in roles}
    encoder = flows.encoders[spec.encoder]
    if encoder.config_file and not encoder.config_file.startswith("builtin:"):
        encoder = encoder.model_copy(
            update={"config_file": str(_resolve_path(base, Path(encoder.config_file)))}
        )
    return RunConfig(
        config_path=path,
        profile=profile,
        storage_root=storage_root,
        encoder_name=spec.encoder,
        encoder=encoder,
        backbone_name=spec.backbone,
        backbone=known_backbones[spec.backbone],
        datasets=datasets,
        roles=roles,
        spec=spec,
        flows=flows,
    )


def resolve_dataset(spec: DatasetSpec, base: Path) -> DatasetSpec:
    """``spec`` with its image root and feature-source paths made absolute against ``base``."""
    update: dict[str, Any] = {"root": None if spec.root is None else _resolve_path(base, spec.root)}
    if spec.features is not None:
        src = spec.features
        update["features"] = src.model_copy(update={
            k: _resolve_path(base, getattr(src, k)) for k in ("path", "table", "split_file")
            if getattr(src, k) is not None})
    return spec.model_copy(update=update)


def _add_imported_datasets(flows: FlowsFile, storage_root: Path) -> None:
    """Datasets recorded by ``tinyemo import-features``: new names are added; a flows.yaml dataset without a
    ``features`` source gets the recorded one (flows.yaml wins for every field it sets)."""
    for name, entry in imported_datasets(storage_root).items():
        try:
            if name not in flows.datasets:
                flows.datasets[name] = DatasetSpec.model_validate(entry)
            elif flows.datasets[name].features is None and entry.get("features"):
                flows.datasets[name] = flows.datasets[name].model_copy(
                    update={"features": FeatureSourceSpec.model_validate(entry["features"])})
        except ValidationError as exc:
            raise ConfigError(_format_errors(exc, (str(storage_root / "datasets.yaml"), name))) from None


def write_scaled_demo(flows_yaml: Path | str, out_dir: Path | str, *, images_per_class: int = 6,
                      shard_size: int = 64, tsne: bool = False, **training: Any) -> Path:
    """A copy of ``flows_yaml`` whose ``demo`` profile is smaller (fewer images, ``training`` overrides) and
    whose stores and demo data live under ``out_dir`` (for tests, benchmarks and quick experiments)."""
    out_dir = Path(out_dir)
    data = yaml.safe_load(Path(flows_yaml).read_text())
    data["storage_root"] = str(out_dir / "storage")
    for spec in data["datasets"].values():
        if str(spec["root"]).startswith("storage/"):
            spec["root"] = str(out_dir / spec["root"])
    demo = data["profiles"]["demo"]
    demo["demo_data"]["images_per_class"] = images_per_class
    demo["extraction"]["shard_size"] = shard_size
    demo["training"].update(training)
    demo["evaluation"]["tsne"] = tsne
    path = out_dir / "flows.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path

