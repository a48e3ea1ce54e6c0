"""Taxonomies, the normalisation table, the shared vocabulary and the Appendix C synonym table."""

from __future__ import annotations

import pytest

from tinyemo_core.data.taxonomy import (
    SYNONYMS,
    TAXONOMIES,
    VOCABULARY,
    UnknownLabelError,
    get_taxonomy,
    label_ids,
    normalise_label,
)


def test_taxonomy_sizes_match_the_paper() -> None:
    sizes = {name: len(t.labels) for name, t in TAXONOMIES.items()}
    assert sizes == {"ekman6": 6, "mikels8": 8, "parrott25": 25, "unbiased6": 6, "emotic26": 26, "open": 0}
    assert TAXONOMIES["ekman6"].labels == ("anger", "disgust", "fear", "joy", "sadness", "surprise")
    assert "love" in TAXONOMIES["unbiased6"] and "disgust" not in TAXONOMIES["unbiased6"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Cheerfullness", "cheerfulness"),
        ("irritabilty", "irritability"),
        ("  SAD ", "sadness"),
        ("'Content'", "contentment"),
        ("Doubt/Confusion", "doubt/confusion"),
        ("doubt_confusion", "doubt/confusion"),
        ("Self-esteem", "self-esteem"),
        ("happy_dog", "happy dog"),
    ],
)
def test_normalisation_table(raw: str, expected: str) -> None:
    assert normalise_label(raw) == expected


def test_strict_taxonomy_rejects_unknown_words_with_a_fix() -> None:
    assert normalise_label("Cheerfullness", "parrott25") == "cheerfulness"
    with pytest.raises(UnknownLabelError, match=r"'happiness'.*not in taxonomy 'ekman6'.*LABEL_ALIASES"):
        normalise_label("Happiness", "ekman6")
    assert normalise_label("Happiness", "open") == "happiness"
    with pytest.raises(UnknownLabelError):
        normalise_label("   ")
    with pytest.raises(ValueError, match="unknown taxonomy 'ekman7'"):
        get_taxonomy("ekman7")


def test_every_published_folder_word_maps_into_its_taxonomy() -> None:
    webemo_folders = ["affection", "cheerfullness", "irritabilty", "zest", "Rage"]
    artphoto_prefixes = ["amusement", "anger", "awe", "content", "disgust", "excitement", "fear", "sad"]
    assert all(normalise_label(w, "parrott25") for w in webemo_folders)
    assert sorted(normalise_label(w, "mikels8") for w in artphoto_prefixes) == sorted(
        TAXONOMIES["mikels8"].labels
    )


def test_shared_vocabulary_gives_one_id_per_word_across_taxonomies() -> None:
    assert len(VOCABULARY) == len(set(VOCABULARY)) and list(VOCABULARY) == sorted(VOCABULARY)
    ids = label_ids(["Sadness", "sad", "sadness", "rage", "Cheerfullness", "cheerfulness"])
    assert ids == {"cheerfulness": 0, "rage": 1, "sadness": 2}
    for name in ("ekman6", "mikels8", "parrott25", "emotic26"):
        assert set(TAXONOMIES[name].labels) <= set(VOCABULARY)


def test_appendix_c_synonyms() -> None:
    assert set(SYNONYMS) == set(TAXONOMIES["parrott25"].labels)
    assert all(len(v) == 3 and len(set(v)) == 3 for v in SYNONYMS.values())
    assert sum(1 + len(v) for v in SYNONYMS.values()) == 100  # "100 labels" (TinyEmo §IV-C)
    assert SYNONYMS["sadness"] == ["sorrow", "grief", "despair"]
    assert SYNONYMS["pride"][0] == "self-esteem"
