"""The grounded demo generator (``generation.backend: demo``): offline synthetic answers that are true.

It answers TinyEmo's Appendix A-A prompts (caption, visual question and answer, sentiment question and
answer) for images that the demo data generator (:mod:`tinyemo_core.data.demo`) drew, by repeating the
image's seeded draws (:func:`tinyemo_core.data.demo.describe_image`) and wording what it finds: the colour
after jitter and mixing, the brightness, the shape (sometimes another class's), the stripes, and the mood of
the class. It is a stand-in for a real generator (Bunny, GPT-4) on the demo profile only: the answers carry
signal, so a reasoner fine-tuned on them can be seen to learn (``make demo``, docs/generation.md). It knows
nothing about other images or prompts and fails those requests with a clear reason. The records go through
the same runner, cache, validation and exports as any generator's.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from pathlib import Path

from tinyemo_core.data.demo import CONCEPTS, DEMO_DATASETS, DEMO_VERSION, describe_image
from tinyemo_core.data.taxonomy import normalise_label

from .. import prompts as P
from .base import Answer, ChatRequest, RequestFailed

NAME = "demo-grounded"
VERSION = 2  # bump when the wording changes: it is part of the fingerprint, so cached answers are redone

# hue (0-1, HSV) -> colour word, by upper bound
HUES: tuple[tuple[float, str], ...] = (
    (0.025, "red"), (0.07, "scarlet"), (0.11, "orange"), (0.18, "yellow"), (0.27, "lime"), (0.42, "green"),
    (0.53, "teal"), (0.66, "blue"), (0.74, "violet"), (0.82, "purple"), (0.90, "magenta"), (0.965, "rose"),
    (1.01, "red"),
)  # fmt: skip
MOODS: dict[str, str] = {
    "joy": "warm and light", "sadness": "heavy and quiet", "anger": "hot and sharp",
    "fear": "dark and uneasy", "disgust": "sour and murky", "surprise": "sudden and open",
    "amusement": "playful and lively",
    "awe": "wide and calm", "contentment": "soft and settled", "excitement": "fast and vivid",
    "affection": "gentle and tender", "irritation": "rough and restless", "nervousness": "tight and jittery",
}  # fmt: skip
SHAPES = ("circle", "ring", "square", "triangle", "diamond", "cross")
TONES = ("dark", "dim", "bright", "pale", "light")
PATTERNS = ("no", "wide", "medium", "fine", "vertical", "horizontal", "diagonal", "stripes")
# the answers, by prompt; {a_...} = the phrase with its article
CAPTION = "{a_background} picture with {a_thing} and {pattern}."
QUESTIONS = {
    "shape": "What shape is drawn on the picture?",
    "colour": "What colour is the background?",
    "pattern": "What pattern covers the background?",
}
ANSWERS = {"shape": "It is {a_thing}.", "colour": "It is {background}.", "pattern": "It has {pattern}."}
SENTIMENT_QUESTION = "How does the {thing} on the {background} background make you feel?"
# the label first, then what the image shows, then the mood of the label it was given: a counterfactual
# request (generation.counterfactual_conditions) gets a true description read in the light of another label
SENTIMENT_ANSWER = "The image evokes {label}: the {background} background and the {thing} feel {mood}."


def _colour(hue: float) -> str:
    return next(name for bound, name in HUES if hue < bound)


def _tone(val: float, sat: float) -> str:
    words = ["dark" if val < 0.35 else "dim" if val < 0.6 else "bright" if val > 0.85 else ""]
    words.append("pale" if sat < 0.4 else "")
    return " ".join(w for w in words if w)


def _pattern(freq: float, angle: float, striped: bool) -> str:
    if not striped or freq < 0.5:
        return "no stripes"
    width = "wide" if freq < 4 else "medium" if freq < 9 else "fine"
    a = angle % 180
    way = "vertical" if a < 22.5 or a >= 157.5 else "horizontal" if 67.5 <= a < 112.5 else "diagonal"
    return f"{width} {way} stripes"


def describe(path: str | Path) -> dict[str, str] | None:
    """Words for what the demo image at ``path`` shows (None when it is not a demo image)."""
    found = describe_image(path)
    if found is None:
        return None
    dataset, word, d = found
    background = " ".join(w for w in (_tone(d.val, d.sat), _colour(d.hue)) if w)
    return {
        "dataset": dataset,
        "word": word,
        "background": background,
        "shape": d.shape,
        "shade": "dark" if d.val > 0.55 else "light",
        "pattern": _pattern(d.freq, d.angle, bool(CONCEPTS[d.concept].freq)),
        "mood": MOODS[d.concept],
    }


def mood_of(label: str) -> str | None:
    """The mood words of the demo concept a label word names (any demo dataset's spelling), else None."""
    concepts = {normalise_label(w): c for entry in DEMO_DATASETS.values() for w, c in entry[3].items()}
    concept = concepts.get(normalise_label(label), label)
    return MOODS.get(concept)


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _template(prompt: str) -> re.Pattern[str]:
    return re.compile(re.escape(prompt).replace(re.escape("<sentiment>"), "(?P<label>.+?)"), re.DOTALL)


_CAPTION = P.strip_image_tag(P.CAPTION_PROMPT)
_VISUAL_Q = P.strip_image_tag(P.VISUAL_QUESTION_PROMPT)
_SENTIMENT_Q = _template(P.strip_image_tag(P.SENTIMENT_QUESTION_PROMPT))
_SENTIMENT_A = _template(P.SENTIMENT_ANSWER_PROMPT)


def _visual_topic(path: str) -> str:
    return list(QUESTIONS)[zlib.crc32(Path(path).name.encode() + Path(path).parent.name.encode()) % 3]


def answer_text(request: ChatRequest) -> str:
    """The answer to ``request`` (raises :class:`RequestFailed` for prompts or images it does not know)."""
    if request.image_path is None:
        raise RequestFailed("the demo generator answers image prompts only (TinyEmo Appendix A-A)")
    w = describe(request.image_path)
    if w is None:
        raise RequestFailed(
            f"{request.image_path} is not a demo image (the demo generator knows only images that "
            "tinyemo_core.data.demo drew); use a real generator (generation.backend: openai | transformers)"
        )
    user = [t.text.strip() for t in request.turns if t.role == "user"]
    thing = f"{w['shade']} {w['shape']}"
    fill = {**w, "thing": thing, "a_thing": _article(thing),
            "a_background": _article(w["background"]).capitalize()}
    if user[0] == _CAPTION and len(user) == 1:
        return CAPTION.format(**fill)
    if user[0] == _VISUAL_Q:
        topic = _visual_topic(request.image_path)
        if len(user) == 1:
            return QUESTIONS[topic]
        if user[-1] == P.VISUAL_ANSWER_PROMPT.strip():
            return ANSWERS[topic].format(**fill)
    if _SENTIMENT_Q.fullmatch(user[0]) is not None:
        if len(user) == 1:
            return SENTIMENT_QUESTION.format(**fill)
        if (told := _SENTIMENT_A.fullmatch(user[-1])) is not None:
            label = told.group("label").strip()
            return SENTIMENT_ANSWER.format(**{**fill, "mood": mood_of(label) or w["mood"]}, label=label)
    raise RequestFailed(
        "the demo generator knows only TinyEmo's Appendix A-A prompts (caption, visual and sentiment "
        f"question/answer); got {user[-1][:80]!r}"
    )


def corpus() -> list[str]:
    """Every word the demo generator writes except the label words (for the demo reasoner's tokenizer)."""
    templates = [CAPTION, *QUESTIONS.values(), *ANSWERS.values(), SENTIMENT_QUESTION, SENTIMENT_ANSWER]
    words = [" ".join(n for _, n in HUES), *MOODS.values(), " ".join(SHAPES + TONES + PATTERNS), "A a an"]
    return [re.sub(r"\{[a-z_]+\}", " ", t) for t in templates] + words


class DemoGroundedGenerator:
    """:class:`~tinyemo_core.generate.backends.base.Generator` over the demo images' drawn attributes."""

    name = NAME

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"{NAME}:{VERSION}:demo-data-{DEMO_VERSION}".encode()).hexdigest()[:16]

    async def health(self) -> None:
        """Nothing to load or reach."""

    async def generate(self, request: ChatRequest) -> Answer:
        text = answer_text(request)
        n = len(text.split())
        if n > request.sampling.max_tokens:
            text = " ".join(text.split()[: request.sampling.max_tokens])
        return Answer(text=text, finish_reason="length" if n > request.sampling.max_tokens else "stop",
                      prompt_tokens=sum(len(t.text.split()) for t in request.turns),
                      completion_tokens=min(n, request.sampling.max_tokens))

    async def aclose(self) -> None:
        return None
