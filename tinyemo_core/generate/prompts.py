"""Prompt texts: TinyEmo Appendix A (verbatim), EmoVIT §3.2 / Supplementary §7.2 and the EmoVIT authors'
GPT-4 prompts (emo/prompt/*.txt in their repository).

The TinyEmo prompts keep the paper's leading ``<image>`` placeholder. Over a chat API the image travels as a
content part instead (:func:`strip_image_tag`); in LLaVA JSON records it becomes ``"<image>\\n"``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path

IMAGE_TAG = "<image>"

# --- TinyEmo Appendix A-A: pre-training dataset generation prompts (Bunny-v1.0-3B) ---
CAPTION_PROMPT = (
    "<image>Describe the image in 2-3 concise sentences. Include only the most critical visual elements to "
    "form a precise caption."
)
VISUAL_QUESTION_PROMPT = (
    "<image>Ask a question about the image that requires specific observation and analytical thinking to "
    "answer. Focus on a clearly visible aspect of the image."
)
VISUAL_ANSWER_PROMPT = (
    "Provide a precise, to-the-point answer to the previously asked question about the image. Ensure your "
    "response directly references visual details."
)
SENTIMENT_QUESTION_PROMPT = (
    "<image>Generate a complex sentiment or emotional question about the image that prompts deep emotional "
    "reasoning from the respondent.\n\n"
    "The associated sentiment label of the image: <sentiment>.\n\n"
    "The question should be directly addressed to the individual answering, encouraging them to engage "
    "personally with the sentiment expressed in the image."
)
SENTIMENT_ANSWER_PROMPT = (
    "Answer the above sentiment-based question based on the visual content and emotional reasoning. The "
    "associated sentiment label of the image: <sentiment>.\n\n"
    "Avoid repeating the phrasing of the question; instead, focus on inferring and articulating the mood "
    "presented by the visual elements.\n\n"
    "Summarize your answer in 2 concise sentences."
)

# --- TinyEmo Appendix A-B: emotional fine-tuning instruction ("EmoReason") ---
EMOREASON_INSTRUCTION = (
    "<image>Provide emotional reasoning about the image, on what you feel and how is the depicted emotion. "
    "Also choose the emotion that best corresponds to the image from the following options:\n\n"
    "Labels: [<emotion taxonomy>]"
)
EMOREASON_CONDITIONAL = "Important: note that the correct label is <sentiment>."
# §III-A gives the answer as "Reasoning: <sentiment answer>\n Predicted Label: <pred label>"; Appendix A-B
# writes "Label:". We follow §III-A's "Predicted Label:" (without the stray space), which is also the format
# the evaluation parser expects.
EMOREASON_ANSWER = "Reasoning: {reasoning}\nPredicted Label: {label}"

# --- EmoVIT §3.2 and Supplementary §7.2 / Fig. 10-11 ---
EMOVIT_CATEGORICAL_QUESTION = (
    "Please select the emotion closest to the image from the following options: {options}."
)
EMOVIT_CATEGORICAL_ANSWER = "Predict emotion: {label}."
# Supplementary §7.2, verbatim (the GPT-4 system prompt for Conversation data).
EMOVIT_SYSTEM_PROMPT = (
    "You are an AI visual assistant, and you are seeing a single image. What you see are provided with one "
    "caption and some emotion related attributes, describing the same image you are looking at. Answer all "
    "questions as you are seeing the image. The range of brightness is from 0 (darkest) to 1 "
    "(brightest), and "
    "the range of colorfulness is from 0 (black-and-white) to 1 (the most colorful)."
)
EMOVIT_CONVERSATION_PROMPT = (
    "Design two questions for a conversation between you and a person asking about this photo. The answers "
    "should be in a tone that a visual AI assistant is seeing the image and answering the question. Ask "
    "diverse "
    "questions and give corresponding answers.\n\n"
    "Include questions asking about the visual content of the image, including the object types, object "
    "actions, relationship among objects, etc. Only include questions that have definite answers: (1) "
    "one can "
    "see the content in the image that the question asks about and can answer confidently; (2) one can "
    "determine confidently from the image that it is not in the image. Do not ask any question that "
    "cannot be "
    "answered confidently. Please answer with the format Question: Answer:\n\n"
    "Also include one complex question that is relevant to the content in the image, for example, asking "
    "about "
    "background knowledge of the objects in the image, asking to discuss about events happening in the "
    "image, "
    "etc. Again, do not ask about uncertain details. Provide detailed answers when answering complex "
    "questions. For example, give detailed examples or reasoning steps to make the content more "
    "convincing and "
    "well-organized. You can include multiple paragraphs if necessary."
)
# The authors' scripts send GPT-4 (text only) a system message and the caption + attributes as the user
# message (EmoVIT repository, emo/gpt4_conversation.py / emo/gpt4_reasoning.py). Conversation: emo/prompt/
# conversation.txt, which is the Supplementary §7.2 text above (system prompt + conversation instructions).
EMOVIT_CONVERSATION_SYSTEM = EMOVIT_SYSTEM_PROMPT + "\n\n" + EMOVIT_CONVERSATION_PROMPT
# The EmoSet attributes the authors' emo/cap-anno.py sends, in its order; EmoVIT §3.2 also lists scene type
EMOVIT_ATTRIBUTES = ("emotion", "brightness", "colorfulness", "object", "facial_expression", "human_action")


@functools.cache
def emovit_reasoning_system() -> str:
    """The Reasoning system message with its three in-context examples, as the authors' script sends it
    (EmoVIT repository, emo/prompt/reasoning.txt; EmoVIT §3.2 mentions the seed examples but does not print
    them). Kept in ``emovit_prompts.yaml`` beside this module."""
    import yaml

    return yaml.safe_load((Path(__file__).with_name("emovit_prompts.yaml")).read_text())["reasoning_system"]


def strip_image_tag(prompt: str) -> str:
    """Remove the ``<image>`` placeholder (the image is sent as a separate chat content part)."""
    return prompt.replace(IMAGE_TAG, "", 1).lstrip("\n")


def with_label(prompt: str, label: str) -> str:
    """Fill the Appendix A ``<sentiment>`` slot with the image's label."""
    return prompt.replace("<sentiment>", label)


def emoreason_instruction(labels: Sequence[str], label: str | None = None) -> str:
    """Appendix A-B instruction; with ``label`` the conditional-reasoning variant (adds the correct label)."""
    text = EMOREASON_INSTRUCTION.replace("<emotion taxonomy>", ", ".join(labels))
    if label is not None:
        text += "\n\n" + with_label(EMOREASON_CONDITIONAL, label)
    return text


def emoreason_answer(reasoning: str, label: str) -> str:
    """§III-A target response: ``Reasoning: ...\\nPredicted Label: ...``."""
    return EMOREASON_ANSWER.format(reasoning=reasoning.strip(), label=label)


def emovit_categorical(labels: Sequence[str], label: str) -> tuple[str, str]:
    """Fig. 10 Categorical record: fixed multiple-choice question and ``Predict emotion: <cls>.``."""
    opts = ", ".join(labels[:-1]) + f" and {labels[-1]}" if len(labels) > 1 else ", ".join(labels)
    return EMOVIT_CATEGORICAL_QUESTION.format(options=opts), EMOVIT_CATEGORICAL_ANSWER.format(label=label)


def emovit_context(caption: str, attributes: Mapping[str, object],
                   names: Sequence[str] = EMOVIT_ATTRIBUTES) -> str:
    """EmoVIT §3.2 context as the authors' emo/cap-anno.py writes it (the GPT-4 user message): the caption,
    a blank line, then ``name: value`` for each attribute the image has, in ``names`` order. The scripts send
    emotion, brightness, colorfulness, object, facial_expression, human_action; §3.2 also lists scene type
    (add "scene" to ``names``)."""
    lines = [f"{name}: {attributes[name]}" for name in names if attributes.get(name) is not None]
    return caption.strip() + "\n\n" + "\n".join(lines)
