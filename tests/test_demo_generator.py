"""The grounded demo generator (generation.backend: demo): true answers for demo images, clear failures for
anything else, counterfactual conditions only in conditional EmoReason records, and the demo reasoner's word
tokenizer covering every prompt and answer without loss."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinyemo_core.data.demo import CONCEPTS, describe_image, generate_demo
from tinyemo_core.generate.backends import RequestFailed, make_generator
from tinyemo_core.generate.chains import COUNTERFACTUAL, ManifestRow, plan, render, tinyemo_chains
from tinyemo_core.generate.export import export_all
from tinyemo_core.generate.runner import collect, generator_dir, run_generation
from tinyemo_core.generate.spec import GenerationSpec


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    generate_demo(root, seed=3, images_per_class=4, image_size=32)
    return root


def _spec(**kw) -> GenerationSpec:
    return GenerationSpec(backend="demo", model="demo-grounded", temperature=0.0, max_tokens=64, **kw)


def _answers(gen, row: ManifestRow) -> dict[str, list[str]]:
    out = {}
    for chain in tinyemo_chains(row):
        texts: list[str] = []
        for i in range(len(chain.steps)):
            texts.append(asyncio.run(gen.generate(render(chain, i, texts, _spec()))).text)
        out[chain.task] = texts
    return out


def test_describe_image_repeats_the_draws(demo: Path) -> None:
    path = demo / "demo_webemo" / "train" / "rage" / "0001.jpg"
    dataset, word, drawn = describe_image(path)
    assert (dataset, word, drawn.concept) == ("demo_webemo", "rage", "anger")
    assert drawn.shape in {p.shape for p in CONCEPTS.values()}
    # the described colour is the image's: its background hue matches the drawn hue (HSV, away from the shape)
    hsv = np.asarray(Image.open(path).convert("HSV"), dtype=np.float64) / 255
    hue = np.median(hsv[..., 0])
    assert min(abs(hue - drawn.hue), 1 - abs(hue - drawn.hue)) < 0.08
    assert describe_image(demo / "demo_webemo" / ".tinyemo-demo.json") is None
    assert describe_image(Path("/tmp/not-a-demo/joy/0001.jpg")) is None


def test_answers_are_grounded_and_other_requests_fail(demo: Path, tmp_path: Path) -> None:
    gen = make_generator(_spec())
    path = demo / "demo_webemo" / "train" / "horror" / "0002.jpg"
    _, _, drawn = describe_image(path)
    answers = _answers(gen, ManifestRow("x", str(path), "horror", "demo_webemo", "train"))
    assert drawn.shape in answers["caption"][0] and answers["sentiment"][0].endswith("?")
    assert answers["sentiment"][1].startswith("The image evokes horror:") and "dark and uneasy" in answers[
        "sentiment"][1]
    # told another label, the description stays the image's and the mood follows the label
    told = _answers(gen, ManifestRow("x", str(path), "cheerfulness", "demo_webemo", "train"))["sentiment"][1]
    assert told.startswith("The image evokes cheerfulness:") and "warm and light" in told
    assert told.split(":")[1].split(" feel ")[0] == answers["sentiment"][1].split(":")[1].split(" feel ")[0]
    other = tmp_path / "joy" / "0001.jpg"
    other.parent.mkdir()
    Image.new("RGB", (8, 8)).save(other)
    with pytest.raises(RequestFailed, match="not a demo image"):
        _answers(gen, ManifestRow("y", str(other), "joy", "d", "train"))


def test_counterfactual_conditions_only_in_conditional_records(demo: Path, tmp_path: Path) -> None:
    root = demo / "demo_webemo"
    rows = [ManifestRow(f"img{i}", str(p), p.parent.name.replace("rage", "anger"), "demo_webemo", "train")
            for i, p in enumerate(sorted((root / "train").rglob("*.jpg"))[:6])]
    spec = _spec(conditional=True, counterfactual_conditions=1)
    chains = plan(rows, spec)
    assert sum(c.task == COUNTERFACTUAL for c in chains) == len(rows)
    assert [c for c in chains if c.task != COUNTERFACTUAL] == plan(rows, _spec(conditional=True))
    gen = make_generator(spec)
    report = run_generation(chains, gen, spec, tmp_path / "gen")
    assert report.total == (5 + 2) * len(rows) and not report.failed  # + question, answer
    results = collect(chains, spec, tmp_path / "gen" / generator_dir(gen), gen.fingerprint)
    labels = {"demo_webemo": sorted({r.label for r in rows})}
    out = export_all(results, tmp_path / "out", root, labels, conditional=True)
    conditional = json.loads(Path(out["files"]["emoreason_train"]).read_text())
    normal = json.loads(Path(out["files"]["emoreason_normal_train"]).read_text())
    pretrain = json.loads(Path(out["files"]["pretrain_train"]).read_text())
    assert len(conditional) == 2 * len(rows) and len(normal) == len(pretrain) // 3 == len(rows)
    for rec in (r for r in conditional if "-told-" in r["id"]):
        told = rec["id"].rsplit("-told-", 1)[1]
        assert rec["conversations"][0]["value"].endswith(f"the correct label is {told}.")
        assert rec["conversations"][1]["value"].endswith(f"Predicted Label: {told}")
    assert not any("-told-" in r["id"] for r in normal + pretrain)


def test_word_tokenizer_covers_the_demo_exactly(demo: Path) -> None:
    from tinyemo_core.finetune.model import SYSTEM
    from tinyemo_core.finetune.tiny import word_tokenizer
    from tinyemo_core.generate import prompts as P

    tok = word_tokenizer()
    labels = ["affection", "cheerfulness", "contentment", "disgust", "horror", "irritability", "nervousness",
              "rage", "sadness", "surprise"]
    answers = _answers(make_generator(_spec()), ManifestRow(
        "x", str(demo / "demo_webemo" / "train" / "sadness" / "0000.jpg"), "sadness", "demo_webemo", "train"))
    prompt = P.strip_image_tag(P.emoreason_instruction(labels, "rage"))
    answer = " " + P.emoreason_answer(answers["sentiment"][1], "sadness")
    texts = [SYSTEM + " USER: ", "\n" + prompt + " ASSISTANT:", answer]
    texts += [a for v in answers.values() for a in v]
    for text in texts:
        ids = tok(text, add_special_tokens=False).input_ids
        assert tok.unk_token_id not in ids, text
        assert tok.decode(ids) == text
    assert len(tok(" rage", add_special_tokens=False).input_ids) == 1
