"""Recipes own their model class, load and save; flows.yaml names only valid recipes; stages ask recipes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from tinyemo_core.config import ConfigError, load_flows
from tinyemo_core.finetune.recipes import RECIPE_INFO, RECIPES, get_recipe, recipe_info
from tinyemo_core.finetune.spec import ModelSpec, TinyModelSpec

ROOT = Path(__file__).resolve().parents[1]


def test_unknown_recipe_is_refused_when_flows_yaml_loads() -> None:
    with pytest.raises(ConfigError) as err:
        load_flows(ROOT / "flows.yaml", ["reasoning.recipe=llava-emotik"], "demo")
    msg = str(err.value)
    assert "profiles.demo.reasoning.recipe" in msg and "'llava-emotik'" in msg
    assert f"valid recipes: {', '.join(sorted(RECIPE_INFO))}" in msg and "llava-emotic, tinyemo" in msg


def test_stages_and_record_kinds_must_be_the_recipes_own() -> None:
    wrong_stage = r"stages \['pretrain'\]: the emovit recipe has the stages \['finetune'\]"
    with pytest.raises(ConfigError, match=wrong_stage):  # the demo profile trains pretrain + finetune
        load_flows(ROOT / "flows.yaml", ["reasoning.recipe=emovit"], "demo")
    with pytest.raises(ConfigError, match="finetune.record_kinds: the tinyemo recipe has no record kinds"):
        load_flows(ROOT / "flows.yaml", ["reasoning.finetune.record_kinds=[categorical]"], "demo")
    ok = load_flows(ROOT / "flows.yaml", ["reasoning.recipe=emovit", "reasoning.stages=[finetune]",
                                          "reasoning.finetune.record_kinds=[categorical]"], "demo")
    assert ok.profiles["demo"].reasoning.finetune.record_kinds == ["categorical"]


def test_registry_lists_every_recipe_with_its_stages() -> None:
    assert set(RECIPES) == set(RECIPE_INFO) and {"tinyemo", "llava-emotic", "emovit"} <= set(RECIPES)
    assert all(get_recipe(name).name == name for name in RECIPES)  # every module defines its own RECIPE
    assert get_recipe("emovit").stages == ("finetune",)
    assert get_recipe("tinyemo").stages == ("pretrain", "finetune")
    assert recipe_info("tinyemo").parent_stage("finetune", ["pretrain", "finetune"]) == "pretrain"
    assert recipe_info("tinyemo").parent_stage("finetune", ["finetune"]) is None
    assert recipe_info("llava-emotic").exports == "emotic"
    assert recipe_info("tinyemo").exports == "instructions"
    with pytest.raises(KeyError, match="valid recipes: emovit, "):
        get_recipe("nope")


@pytest.mark.parametrize("name", ["tinyemo", "emovit"])
def test_build_save_load_round_trip_with_the_recipes_class(name: str, tmp_path: Path) -> None:
    recipe = get_recipe(name)
    model, processor = recipe.build(ModelSpec(tiny=TinyModelSpec()))
    assert type(model).__name__ == recipe.model_class
    recipe.save(model, processor, tmp_path / "model")
    again, proc2 = recipe.load(tmp_path / "model")
    assert type(again).__name__ == recipe.model_class and type(proc2).__name__ == type(processor).__name__
    before, after = model.state_dict(), again.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_stages_name_no_model_class_and_branch_on_no_recipe_name() -> None:
    found = []
    for path in sorted((ROOT / "tinyemo_core" / "stages").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Name | ast.Attribute):
                ident = node.id if isinstance(node, ast.Name) else node.attr
                if ident.endswith("ForConditionalGeneration"):
                    found.append(f"{path.name}:{node.lineno} names {ident}")
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                names = {s.value for s in sides if isinstance(s, ast.Constant) and isinstance(s.value, str)}
                reads_recipe = any(isinstance(s, ast.Attribute) and s.attr == "recipe" for s in sides)
                if reads_recipe and names & set(RECIPE_INFO):
                    found.append(f"{path.name}:{node.lineno} compares .recipe with {sorted(names)}")
    assert not found, "\n".join(found)
