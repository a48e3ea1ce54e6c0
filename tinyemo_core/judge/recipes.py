"""How each recipe's answers are judged (docs/judging.md): what one scored item is, how an answer is read,
what is measured. The evaluate-generated stage asks these facts and branches on no recipe name.

- ``tinyemo`` / ``emovit``: one item per image; the answer names one label (the recipe's field marker first,
  :func:`tinyemo_core.judge.parse.parse_label`); accuracy, per-class F1, confusion, instruction sensitivity.
- ``llava-emotic``: one item per annotated person (its red-box image); the answer names categories and
  V/A/D words; mAP over the 26 categories, V/A/D bin error, optionally the likelihood-ranked mAP.
- ``llava`` / ``reasoning``: free text, judged by CLIPScore only (TinyEmo Table VI).
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyemo_core.judge.prompts import default_instruction


@dataclass(frozen=True)
class JudgeRecipe:
    name: str
    per_person: bool = False  # items are the EMOTIC persons of each image, not the images
    multilabel: bool = False  # answers name several categories (mAP) instead of one label (accuracy)
    likelihood_map: bool = False  # categories can also be ranked by the model's likelihood (model in process)
    free_text: bool = False  # answers are free text (no label to read): judged by CLIPScore only

    @property
    def instruction(self) -> str:
        """The instruction template the recipe was trained with (its default prompt)."""
        return default_instruction(self.name)


JUDGE_RECIPES: dict[str, JudgeRecipe] = {
    "tinyemo": JudgeRecipe("tinyemo"),
    "emovit": JudgeRecipe("emovit"),
    "llava-emotic": JudgeRecipe("llava-emotic", per_person=True, multilabel=True, likelihood_map=True),
    "llava": JudgeRecipe("llava", free_text=True),  # TinyEmo Table VI's LLaVA LoRA variants
    "reasoning": JudgeRecipe("reasoning", free_text=True),
}


def judge_recipe(name: str) -> JudgeRecipe:
    """The judging facts of ``name``; an unknown name is an error listing the valid ones."""
    if name not in JUDGE_RECIPES:
        raise KeyError(f"no judging rules for recipe {name!r}; valid: {', '.join(sorted(JUDGE_RECIPES))}")
    return JUDGE_RECIPES[name]
