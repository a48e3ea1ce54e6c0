"""TinyEmo's reasoning half as the paper has it: the stage-2 model of `paper` is trained on the conditional
line it is run with (§III-C, Eq. 5; Appendix A-B), and Fig. 9 compares two trained models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinyemo_core.config import ConfigError, load_config
from tinyemo_core.generate.backends.base import Answer, Turn
from tinyemo_core.generate.chains import Chain, ManifestRow, Step
from tinyemo_core.generate.export import export_all
from tinyemo_core.generate.runner import ChainResult

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows.yaml"
LINE = "Important: note that the correct label is {}."


def _sentiment_results(root: Path) -> list[ChainResult]:
    out = []
    for i, label in enumerate(["joy", "sadness"]):
        (root / f"{i}.jpg").write_bytes(b"x")
        row = ManifestRow(f"img{i}", str(root / f"{i}.jpg"), label, "webemo", "train")
        chain = Chain("sentiment", row, (Step("sentiment_question", (Turn(role="user", text="q"),)),) * 2)
        out.append(ChainResult(chain, ["How does it feel?", f"It feels like {label}."], "ok"))
    return out


def test_paper_stage2_export_carries_the_true_label_line(tmp_path: Path) -> None:
    cfg = load_config(FLOWS, "paper")
    gen, reasoning = cfg.spec.generation, cfg.spec.reasoning
    assert gen is not None and reasoning is not None
    assert gen.conditional and reasoning.reason.condition  # trained as run
    summary = export_all(_sentiment_results(tmp_path), tmp_path / "out", tmp_path,
                         {"webemo": ["joy", "sadness"]}, mode=gen.mode, conditional=gen.conditional)
    trained = json.loads(Path(summary["files"][reasoning.finetune.export]).read_text())
    for rec, truth in zip(trained, ["joy", "sadness"], strict=True):
        assert rec["conversations"][0]["value"].endswith(LINE.format(truth))  # the TRUE label in training
        assert rec["conversations"][1]["value"].endswith(f"Predicted Label: {truth}")
    assert reasoning.normal is not None  # Fig. 9's normal model trains on the same records without it
    normal = json.loads(Path(summary["files"][reasoning.normal.export]).read_text())
    assert [r["id"] for r in normal] == [r["id"] for r in trained]
    assert not any("Important" in r["conversations"][0]["value"] for r in normal)


def test_trained_normal_run_conditional_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"profiles\.paper: .*trained 'normal' and run 'conditional'"):
        load_config(FLOWS, "paper", ["generation.conditional=false"])
    with pytest.raises(ConfigError, match="carries the conditional-reasoning line"):
        load_config(FLOWS, "paper", ["reasoning.reason.condition=false"])
    cfg = load_config(FLOWS, "paper", ["reasoning.reason.condition=false",
                                       "reasoning.finetune.export=emoreason_normal_train"])
    assert cfg.spec.reasoning is not None and not cfg.spec.reasoning.reason.condition


def test_fig9_comparison_puts_two_trained_models_side_by_side(tmp_path: Path) -> None:
    """comparison.md: the normal model asked without the line beside the conditional model asked with it."""
    from tinyemo_core.finetune.spec import ReasonSpec
    from tinyemo_core.stages import reason as R

    items = [R.ReasonItem(f"e{i}", str(tmp_path / f"{i}.jpg"), ("joy", "fear"), "fear", 0.8, "fear")
             for i in range(2)]

    def model(name: str):
        def answer(reqs):
            said = ["a label" if "Important" in r.turns[0].text else "none" for r in reqs]
            return [Answer(text=f"Reasoning: {name} saw {s}.\nPredicted Label: fear", finish_reason="stop")
                    for s in said]
        return answer

    spec = ReasonSpec(batch_size=2, compare_images=2)
    R.write_reasoning(tmp_path / "two", items, model("conditional-model"), spec, {}, None,
                      model("normal-model"))
    text = (tmp_path / "two" / "comparison.md").read_text()
    assert "Two trained models" in text
    assert text.count("normal-model saw none") == 2 and text.count("conditional-model saw a label") == 2
    assert json.loads((tmp_path / "two" / "result.json").read_text())["comparison"] == "two trained models"
    R.write_reasoning(tmp_path / "one", items, model("m"), spec, {})
    assert "not TinyEmo Fig. 9" in (tmp_path / "one" / "comparison.md").read_text()


def test_normal_model_is_a_second_stage2_from_the_same_stage1(tmp_path: Path) -> None:
    """reasoning.normal trains one more stage-2 model (its own folder) from the cached stage-1 model."""
    import torch

    from tinyemo_core.finetune.spec import ModelSpec, ReasoningSpec, StageSpec, TinyModelSpec, TrainArgs
    from tinyemo_core.finetune.tiny import tiny_exports
    from tinyemo_core.stages.finetune import run_finetune

    exports = tiny_exports(tmp_path / "x", 4, conditional=True)
    normal = [dict(r) for r in json.loads(exports["emoreason_train"].read_text())]
    for r in normal:
        human = r["conversations"][0]["value"]
        r["conversations"] = [{"from": "human", "value": human.split("\n\nImportant")[0]},
                              r["conversations"][1]]
    (tmp_path / "x" / "emoreason_normal_train.json").write_text(json.dumps(normal))
    args = TrainArgs(learning_rate=1e-3, max_steps=1, per_device_train_batch_size=4, save_steps=10)
    spec = ReasoningSpec(model=ModelSpec(tiny=TinyModelSpec(hidden=16, vision_hidden=16)),
                         pretrain=StageSpec(export="pretrain_train", train=args),
                         finetune=StageSpec(export="emoreason_train", train=args),
                         normal=StageSpec(export="emoreason_normal_train", train=args))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = run_finetune(tmp_path / "storage", spec, tmp_path / "x", tmp_path / "x")
    finally:
        torch.set_num_threads(threads)
    assert out["normal_model"] and out["normal_model"] != out["model"]
    assert Path(out["normal_model"], "config.json").is_file() and Path(out["model"], "config.json").is_file()
    trained = sorted(p.name.split("-")[0] for p in (tmp_path / "storage" / "finetune" / "tinyemo").iterdir())
    assert trained == ["finetune", "finetune", "pretrain"]  # stage 1 once, shared by both stage-2 models


def test_docs_credit_what_the_papers_say() -> None:
    """Attributions the papers do not make stay out of the docs (issue 20: the second half's fidelity)."""
    spec_doc = (ROOT / "tinyemo_core" / "finetune" / "spec.py").read_text()
    assert "Paper defaults" not in spec_doc and "LLaVA-1.5's / TinyLLaVA Factory's defaults" in spec_doc
    judging = (ROOT / "docs" / "judging.md").read_text()
    assert "TinyEmo's reasoning model (CLIPScore" not in judging and "these are LLaVA models" in judging
    recipes = (ROOT / "docs" / "recipes.md").read_text()
    assert 'the poster says "LLaVA" with no version or size' in recipes
    assert "2,048-wide" not in (ROOT / "docs" / "interpretability.md").read_text()
    generation = (ROOT / "docs" / "generation.md").read_text()
    assert "are Bunny's own" in generation
    assert "(SigLIP-so400m/384 + `mlp2x_gelu` projector + Phi-2)" not in generation
    reasoning = (ROOT / "docs" / "reasoning.md").read_text()
    assert "the image's **true**" in reasoning and "Metric Projector's **top-1**" in reasoning


def test_paper_judges_generated_answers_on_the_projectors_images() -> None:
    """evaluate_generated split auto = the images the projector evaluation scores; interpret: UnbiasedEmo."""
    from tinyemo_core.stages.assemble import EVERY_SPLIT, eval_splits
    from tinyemo_core.stages.evaluate_generated import scored_split

    cfg = load_config(FLOWS, "paper")
    ev = cfg.spec.evaluate_generated
    assert ev is not None and ev.split == "auto" and ev.model == "normal" and ev.recipe == "tinyemo"
    assert ev.datasets == cfg.spec.zero_shot
    for name, role in cfg.roles.items():
        want = eval_splits(cfg.datasets[name], role)
        got = scored_split(ev.split, cfg.datasets[name], role)
        assert (got is None) == (want == EVERY_SPLIT) and (got is None or (got,) == want)
    assert scored_split("auto", cfg.datasets["artphoto"], "zero_shot") is None  # every ArtPhoto image
    assert scored_split("auto", cfg.datasets["emotion6"], "zero_shot") == "test"
    assert scored_split("auto", cfg.datasets["webemo"], "held_in") == "test"
    it = cfg.spec.interpret
    assert it is not None and it.dataset == "unbiasedemo" and it.splits is None
    assert set(it.ablation_splits) == {"train", "val", "test"}
