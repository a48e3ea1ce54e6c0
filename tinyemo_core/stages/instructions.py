"""generate-qa's stage: a dataset's manifest -> generated answers (per-request cache) -> LLaVA exports under
``instructions/<dataset>/`` (TinyEmo §III-A, EmoVIT §3.2), with ``export.json`` written last
(:class:`tinyemo_core.store.instructions.InstructionsStore`).

:func:`plan` fingerprints what shapes the exports without loading or asking the generator: the manifest's
content, the generation settings (transport settings such as concurrency and timeouts excluded), the image
root, the external EmoReason set and the generator's identity (a local folder by content; a served model by
endpoint + model id + revision). A complete plan means generate-qa has nothing to do: no request is sent, no
file is rewritten.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinyemo_core.fingerprint import step_fingerprint
from tinyemo_core.generate.affection_export import KIND, REASONING_PROMPT, write_affection_exports
from tinyemo_core.generate.chains import label_lists, load_manifest
from tinyemo_core.generate.chains import plan as plan_chains
from tinyemo_core.generate.export import export_all
from tinyemo_core.generate.roles import captioner_generation_spec, make_generators
from tinyemo_core.generate.runner import collect, run_generation
from tinyemo_core.generate.spec import GenerationSpec
from tinyemo_core.identity import file_sha256, local_model_fingerprint
from tinyemo_core.store.generations import GenerationsStore
from tinyemo_core.store.instructions import InstructionsStore
from tinyemo_core.store.manifests import read_summary
from tinyemo_core.store.plan import StorePlan

#: settings that change how requests travel, not what is generated
TRANSPORT = {"api_key_env", "max_concurrency", "timeout_s", "max_retries", "backoff_base_s", "backoff_max_s",
             "device", "datasets"}


def generator_identity(spec: GenerationSpec) -> Any:
    """The generator's identity without loading it: a local folder by content (the same name the loaded
    generator gives itself), a served model by endpoint, id and revision; with EmoVIT's captioner, both."""
    if spec.captioner is not None:
        return {"text": generator_identity(spec.model_copy(update={"captioner": None})),
                "vision": generator_identity(captioner_generation_spec(spec, spec.captioner))}
    if spec.backend == "transformers":
        return local_model_fingerprint(spec.model, chat_format=spec.chat_format, dtype=spec.dtype)
    return {"endpoint": spec.base_url.rstrip("/"), "model": spec.model, "revision": spec.model_revision}


def fingerprint(dataset: str, manifest: Path, spec: GenerationSpec, image_root: Path,
                external: str | None = None) -> str:
    settings = spec.model_dump(mode="json", exclude=TRANSPORT)
    ext = None
    if external is not None:
        ext = file_sha256(external)
    return step_fingerprint("instructions", dataset, read_summary(Path(manifest))["content_hash"], settings,
                            str(image_root), ext, generator_identity(spec))


def plan(storage_root: Path, dataset: str, manifest: Path, spec: GenerationSpec, image_root: Path,
         external: str | None = None) -> StorePlan:
    """Fingerprint, folder (``instructions/<dataset>/``) and completion of one dataset's exports."""
    fp = fingerprint(dataset, manifest, spec, image_root, external)
    return InstructionsStore(storage_root).plan(dataset, fp)


def generations_root(storage_root: Path) -> Path:
    return GenerationsStore(storage_root).root


def build(plan: StorePlan, manifests: list[str], spec: GenerationSpec, image_root: Path, storage_root: Path,
          *, external: str | None = None,
          generate: Callable[..., dict[str, Any]] | None = None) -> dict[str, Any]:
    """Send the missing requests, export, write ``export.json`` last. ``generate(chains, spec, root)``
    runs the requests (default: :func:`run_requests`; the flow passes one that reports progress)."""
    store = InstructionsStore(storage_root)
    store.begin(plan)
    rows, chains = chains_of(manifests, spec, image_root)
    report = (generate or run_requests)(chains, spec, generations_root(storage_root))
    summary = export(rows, chains, spec, image_root, generations_root(storage_root) / report["generator_dir"],
                     report["fingerprint"], plan.path, external)
    return store.commit(plan, {"report": report, **summary})


def chains_of(manifests: list[str], spec: GenerationSpec, image_root: Path):
    rows = load_manifest(manifests, spec, image_root=str(image_root))
    return rows, plan_chains(rows, spec)


def run_requests(chains, spec: GenerationSpec, root: Path, on_progress=None) -> dict[str, Any]:
    return run_generation(chains, make_generators(spec), spec, str(root), on_progress).as_dict()


def export(rows, chains, spec: GenerationSpec, image_root: Path, generations_dir: Path, generator_fp: str,
           out_dir: Path, external: str | None) -> dict[str, Any]:
    """Read the cached answers back and write validated LLaVA JSON files with per-split statistics."""
    results = collect(chains, spec, str(generations_dir), generator_fp)
    return export_all(results, str(out_dir), str(image_root), label_lists(rows, spec), mode=spec.mode,
                      conditional=spec.conditional, external=external)


def plan_affection(storage_root: Path, dataset: str, manifest: Path) -> StorePlan:
    """TinyEmo Table VI's pairs from an affection-layout manifest (no generator): ``instructions/<dataset>/``
    fingerprinted by the manifest's content and the prompt."""
    fp = step_fingerprint("instructions", dataset, read_summary(Path(manifest))["content_hash"], KIND,
                          REASONING_PROMPT)
    return InstructionsStore(storage_root).plan(dataset, fp)


def build_affection(plan: StorePlan, manifest: Path, storage_root: Path) -> dict[str, Any]:
    """Write ``affection_<split>.json``, then ``export.json``."""
    store = InstructionsStore(storage_root)
    store.begin(plan)
    return store.commit(plan, write_affection_exports(Path(manifest), plan.path))
