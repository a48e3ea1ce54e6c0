"""Evaluation prompts per recipe (docs/judging.md, "Prompts").

- ``tinyemo``: TinyEmo Appendix A-B EmoReason instruction with ``Labels: [<the dataset's labels>]``.
- ``emovit``: EmoVIT's categorical question (Fig. 10); the two instruction-sensitivity phrasings of EmoVIT
  §4.3.2 (:data:`EMOVIT_SENSITIVITY_INSTRUCTIONS`, verbatim with the class list substituted) are given as
  ``instructions:`` in flows.yaml (the paper-emovit profile) and by the test configs.
- ``llava-emotic``: the person-in-the-red-box question (LLaVA on EMOTIC poster); the wording is ours.
- ``reasoning``: TinyEmo Table VI's "What does this image make you feel?" (CLIPScore / RefCLIPScore).

An instruction template may contain ``{options}`` (the dataset's labels, EmoVIT style "a, b and c") and/or
``{labels}`` (comma-separated, TinyEmo style).
"""

from __future__ import annotations

from collections.abc import Sequence

from tinyemo_core.data.emotic_persons import PERSON_PROMPT
from tinyemo_core.generate import prompts as P
from tinyemo_core.generate.affection_export import REASONING_PROMPT  # TinyEmo Table VI

# EmoVIT §4.3.2, the two semantically similar instructions (``cls_1, cls_2, ...`` -> {options}).
EMOVIT_SENSITIVITY_INSTRUCTIONS: tuple[str, ...] = (
    "From the given options: {options}, identify the emotion that most accurately reflects the image. Ensure "
    "your selection is confined to the listed options. Respond in the format: Predicted emotion:",
    "Please choose the emotion that best corresponds to the image from the following options: {options}. "
    "(Do not provide answers beyond the provided candidates.) Please reply in the following format: "
    "Predict emotion:",
)

EMOTIC_PERSON_PROMPT = PERSON_PROMPT  # the export's emotions_vad question


def options_text(labels: Sequence[str]) -> str:
    """EmoVIT's option list: "a, b and c" (as :func:`tinyemo_core.generate.prompts.emovit_categorical`)."""
    labels = list(labels)
    return ", ".join(labels[:-1]) + f" and {labels[-1]}" if len(labels) > 1 else ", ".join(labels)


def default_instruction(recipe: str) -> str:
    """The instruction template a recipe was trained with."""
    if recipe == "tinyemo":
        return P.strip_image_tag(P.EMOREASON_INSTRUCTION).replace("<emotion taxonomy>", "{labels}")
    if recipe == "emovit":
        return P.EMOVIT_CATEGORICAL_QUESTION
    if recipe == "llava-emotic":
        return EMOTIC_PERSON_PROMPT
    if recipe in ("reasoning", "llava"):  # llava: TinyEmo Table VI's LoRA variants
        return REASONING_PROMPT
    raise ValueError(f"unknown recipe {recipe!r}; use tinyemo, emovit, llava-emotic or reasoning")


def render_instruction(template: str, labels: Sequence[str]) -> str:
    """Fill ``{options}`` / ``{labels}``; a template without either is sent as is."""
    return template.replace("{options}", options_text(labels)).replace("{labels}", ", ".join(labels))
