"""EmoVIT's data generation as the paper and the authors' scripts have it (EmoVIT §3.2, §4.1): a vision model
captions, a text model writes Conversation and Reasoning from caption + attributes, 51,200 images."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tinyemo_core.config import ConfigError, load_config
from tinyemo_core.generate import prompts as P
from tinyemo_core.generate.chains import load_manifest, plan, render
from tinyemo_core.generate.spec import GenerationSpec

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows.yaml"
CLASSES = ("amusement", "anger", "awe", "sadness")


def _manifest(tmp: Path, per_class: int = 5) -> Path:
    from PIL import Image

    rows = []
    for c, label in enumerate(CLASSES):
        for i in range(per_class):
            rel = f"image/{label}/{label}_{i:05d}.png"
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (24, 16), (60 * c, 40, 200 - 40 * c)).save(tmp / rel)
            attrs = {"brightness": 0.4, "colorfulness": 0.7, "scene": "beach", "object": ["Person"]}
            rows.append(dict(image_id=f"{label}_{i:05d}", path=rel, split="train", label=label,
                             labels=[label], taxonomy="emoset", dataset="emoset", status="ok", error=None,
                             attributes=json.dumps(attrs)))
    pq.write_table(pa.Table.from_pylist(rows), tmp / "m.parquet")
    return tmp / "m.parquet"


def test_paper_emovit_profile_splits_the_roles() -> None:
    gen = load_config(FLOWS, "paper-emovit").spec.generation
    assert gen is not None and gen.mode == "emovit" and gen.datasets == ["emoset"]
    assert gen.captioner is not None and "blip2-opt-2.7b" in gen.captioner.model  # the authors' caption.py
    assert gen.captioner.prompt == ""  # BLIP-2 captions without a prompt
    assert gen.backend == "openai" and gen.model == "gpt-4"  # text only: it only ever gets text requests
    assert (gen.max_images, gen.image_sample) == (51200, "random")  # §4.1
    assert "scene" not in gen.emovit_attributes  # the scripts' attribute list (docs/generation.md)
    with pytest.raises(ConfigError, match="captioner is for mode: emovit"):
        load_config(FLOWS, "paper", ["generation.captioner={model: tiny}"])
    with pytest.raises(ConfigError, match="unknown EmoSet attributes"):
        load_config(FLOWS, "paper-emovit", ["generation.emovit_attributes=[mood]"])


def test_chain_uses_the_authors_prompts_and_only_the_caption_sees_the_image(tmp_path: Path) -> None:
    spec = GenerationSpec(model="gpt-4", mode="emovit", captioner={"model": "blip2"})
    rows = load_manifest([_manifest(tmp_path)], spec, image_root=tmp_path)
    conv_chain, reason_chain = plan(rows, spec)[:2]  # one chain per data type, both from the caption
    caption = render(conv_chain, 0, [], spec)
    assert caption.image_path is not None and caption.turns[0].text == ""  # BLIP-2: no prompt
    conv, reason = (render(c, 1, ["a child on a beach"], spec) for c in (conv_chain, reason_chain))
    assert conv.image_path is None and reason.image_path is None
    context = ("a child on a beach\n\nemotion: amusement\nbrightness: 0.4\ncolorfulness: 0.7\n"
               "object: ['Person']")
    assert conv.turns[1].text == context == reason.turns[1].text  # emo/cap-anno.py's user message
    assert conv.turns[0].text == P.EMOVIT_SYSTEM_PROMPT + "\n\n" + P.EMOVIT_CONVERSATION_PROMPT
    system = reason.turns[0].text  # emo/prompt/reasoning.txt with its three in-context examples
    assert system.startswith("You are an AI visual assistant that can analyze a single image.")
    assert system.count("caption & attributes:") == 3 and "powerpuff dolls" in system
    with_scene = spec.model_copy(update={"emovit_attributes": [*P.EMOVIT_ATTRIBUTES[:3], "scene"]})
    assert render(plan(rows, with_scene)[0], 1, ["x"], with_scene).turns[1].text.endswith("scene: beach")


def test_budget_is_a_seeded_draw_across_classes(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    first = load_manifest([manifest], GenerationSpec(model="m", max_images=8), image_root=tmp_path)
    assert {r.label for r in first} == {"amusement", "anger"}  # ids sort by class: whole classes
    spec = GenerationSpec(model="m", max_images=8, image_sample="random", seed=1)
    drawn = load_manifest([manifest], spec, image_root=tmp_path)
    assert len(drawn) == 8 and len({r.label for r in drawn}) >= 3
    assert drawn == load_manifest([manifest], spec, image_root=tmp_path)  # seeded


def test_captions_with_the_vision_model_asks_the_text_model(tmp_path: Path) -> None:
    """The real runner with two tiny in-process models: every image request reaches the captioner, every
    Conversation/Reasoning request the text model, whose requests carry the caption the captioner wrote."""
    from tinyemo_core.generate.backends.transformers_local import TransformersGenerator
    from tinyemo_core.generate.roles import RoleSplitGenerator, make_generators
    from tinyemo_core.generate.runner import collect, run_generation
    from tinyemo_core.generate.tiny_model import resolve_local_model

    class Recording(TransformersGenerator):
        def __init__(self, path: str, name: str) -> None:
            super().__init__(path, device="cpu", name=name)
            self.seen: list = []

        def generate_sync(self, request, image=None):
            self.seen.append(request)
            return super().generate_sync(request, image)

    tiny = resolve_local_model("tiny", tmp_path / "storage")
    spec = GenerationSpec(model=tiny, backend="transformers", mode="emovit", max_images=2, max_tokens=6,
                          temperature=0.0, captioner={"model": tiny, "max_tokens": 5},
                          validation={"reject_truncated": False})
    built = make_generators(spec)
    assert isinstance(built, RoleSplitGenerator) and built.vision.name == built.text.name == "tiny-vlm"
    vision, text = Recording(tiny, "captioner"), Recording(tiny, "writer")
    gen = RoleSplitGenerator(vision, text, built.caption_sampling)
    rows = load_manifest([_manifest(tmp_path, 1)], spec, image_root=tmp_path)
    chains = plan(rows, spec)
    report = run_generation(chains, gen, spec, tmp_path / "gen")
    assert report.total == 8 and report.generator_dir.startswith("writer+captioner-")
    # one caption per image although two chains start with it (the second waits for it or reads the cache)
    assert len(vision.seen) == 2 and all(r.image_path for r in vision.seen) and report.cached == 2
    assert all(r.sampling.max_tokens == 5 for r in vision.seen)  # the captioner's own settings
    # random weights write no "Question:/Answer:" pairs: both text answers fail their format check (recorded);
    # what matters here is who was asked what
    assert report.failed == {"format": 4}
    assert len(text.seen) == 4 and not any(r.image_path for r in text.seen)
    kinds = {r.turns[0].text[:40] for r in text.seen}
    assert len(kinds) == 2  # the Conversation and the Reasoning system messages
    captions = [c.texts[0] for c in collect(chains, spec, tmp_path / "gen" / report.generator_dir,
                                             report.fingerprint)]
    assert all(any(r.turns[-1].text.startswith(cap.strip() + "\n\nemotion: ") for r in text.seen)
               for cap in captions)


def test_a_failed_conversation_keeps_the_images_other_records(tmp_path: Path) -> None:
    """One chain per data type (the authors ran separate scripts): a Conversation answer that fails its check
    costs that image its Conversation record only; Categorical needs no request at all."""
    from tinyemo_core.generate.export import emovit_records
    from tinyemo_core.generate.runner import ChainResult

    spec = GenerationSpec(model="gpt-4", mode="emovit", captioner={"model": "blip2"})
    rows = load_manifest([_manifest(tmp_path, 1)], spec, image_root=tmp_path)[:1]
    chains = plan(rows, spec)
    assert [c.steps[-1].kind for c in chains] == ["emovit_conversation", "emovit_reasoning"]
    # the same caption request (one cache key)
    assert render(chains[0], 0, [], spec) == render(chains[1], 0, [], spec)
    results = [ChainResult(chains[0], ["a dog"], "failed", "format"),
               ChainResult(chains[1], ["a dog", "Question: Why fun? Answer: It plays."], "ok")]
    records = emovit_records(results, {"emoset": list(CLASSES)}, tmp_path)
    kinds = [rec["id"].rsplit("-", 1)[1] for rec, _ in records]
    assert kinds == ["categorical", "reasoning"]
