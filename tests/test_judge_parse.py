"""Label parsing from real-looking answers (rules: tinyemo_core/judge/parse.py, docs/judging.md)."""

from tinyemo_core.judge.emotic import parse_categories, parse_vad, vad_bin
from tinyemo_core.judge.parse import label_terms, parse_label

MIKELS = ["amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness"]
PARROTT = ["affection", "cheerfulness", "lust", "sadness", "surprise", "horror"]


def test_label_in_the_middle_of_prose():
    text = (
        "The dim light and the empty bench give the scene a quiet weight. Overall the image conveys "
        "sadness, as the lone figure seems lost in thought."
    )
    p = parse_label(text, MIKELS, recipe="emovit")
    assert (p.label, p.status, p.field_missing) == ("sadness", "ok", True)  # no "Predict emotion:"


def test_two_labels_first_mention_wins_and_is_flagged():
    p = parse_label("It could be awe, but the storm mostly evokes fear.", MIKELS, recipe="emovit")
    assert (p.label, p.status, p.mentions) == ("awe", "several", ("awe", "fear"))


def test_casing_and_field_scope_tinyemo():
    text = (
        "Reasoning: The crowd cheers and the confetti is flying; anger is nowhere to be seen.\n"
        "Predicted Label: EXCITEMENT"
    )
    p = parse_label(text, MIKELS, recipe="tinyemo")
    assert (p.label, p.status) == ("excitement", "ok")  # "anger" in the reasoning is outside the field


def test_emovit_field_with_trailing_period():
    assert parse_label("Predict emotion: Contentment.", MIKELS, recipe="emovit").label == "contentment"


def test_missing_field_falls_back_to_whole_answer_and_is_flagged():
    p = parse_label("I would say amusement.", MIKELS, recipe="tinyemo")
    assert (p.label, p.field_missing) == ("amusement", True)


def test_synonyms_and_aliases_count_as_their_label():
    p = parse_label("A wave of sorrow and grief; the people look sad.", PARROTT, recipe="emovit")
    assert (p.label, p.status, p.mentions) == ("sadness", "ok", ("sadness",))
    p = parse_label("Pure joy on their faces.", PARROTT, recipe="emovit")  # Table X: joy -> cheerfulness
    assert p.label == "cheerfulness"


def test_ambiguous_synonym_is_dropped():
    terms = label_terms(PARROTT)  # "love" is a synonym of affection and of lust
    assert "love" not in terms and terms["fondness"] == "affection"
    assert parse_label("So much love here.", PARROTT, recipe="emovit").status == "none"


def test_whole_words_only():
    assert parse_label("A fearless climber, awesome view.", MIKELS, recipe="emovit").status == "none"
    assert parse_label("Awe-inspiring mountains.", MIKELS, recipe="emovit").label == "awe"


def test_synonyms_can_be_switched_off():
    assert parse_label("terror everywhere", PARROTT, recipe="emovit").label == "horror"
    assert parse_label("terror everywhere", PARROTT, recipe="emovit", synonyms=False).status == "none"


def test_no_label_is_none():
    p = parse_label("I'm not sure what to say about this picture.", MIKELS, recipe="emovit")
    assert (p.label, p.status, p.mentions) == (None, "none", ())


def test_emotic_categories_and_vad():
    cats = ["doubt/confusion", "engagement", "esteem", "happiness", "peace"]
    text = (
        "Emotions: Engagement, doubt/confusion, confusion. Valence: very high, Arousal: low, Dominance: xyz"
    )
    assert parse_categories(text, cats) == ["engagement", "doubt/confusion"]
    words = [f"w{i}" for i in range(1, 9)]
    words = ["very low", "low", *words[2:], "high", "very high"]
    assert parse_vad(text, words) == (10, 2, None)
    assert [vad_bin(v) for v in (1, 4.49, 4.5, 10)] == [1, 4, 5, 10]
