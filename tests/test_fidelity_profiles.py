"""The paper profiles are TinyEmo Table VIII's rows (encoder, backbone, loss, synonyms), the Table IV grid
exists in flows.yaml, and the documented target means are the means of the documented row numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tinyemo_core.config import load_config
from tinyemo_core.projector.spec import TrainingSpec

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows.yaml"

ROWS = {  # profile: (backbone source, loss, synonym_prob)
    "paper-700m": ("apple/OpenELM-270M-Instruct", "ntxent", 0.5),
    "paper-880m": ("apple/OpenELM-450M-Instruct", "cosine", 0.0),
    "paper-1.53b": ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", "cosine", 0.0),
    "paper-3.21b": ("microsoft/phi-2", "cosine", 0.0),
}


def test_default_loss_is_cosine() -> None:
    assert TrainingSpec().loss == "cosine"  # Table VIII: "cosine embedding loss unless stated otherwise"


@pytest.mark.parametrize("profile", [*ROWS, "paper"])
def test_table_viii_rows(profile: str) -> None:
    cfg = load_config(FLOWS, profile)
    source, loss, prob = ROWS.get(profile, ROWS["paper-1.53b"])
    assert cfg.encoder.model == "ViT-L-14" and cfg.encoder.pretrained == "openai"
    assert cfg.backbone.source == source
    assert (cfg.spec.training.loss, cfg.spec.training.synonym_prob) == (loss, prob)
    assert (cfg.spec.training.epochs, cfg.spec.training.batch_size) == (5, 32)
    assert cfg.spec.held_in == ["emotionroi", "emoset", "webemo"]
    assert cfg.spec.zero_shot == ["emotion6", "fi", "artphoto", "abstract", "unbiasedemo"]
    assert [n for n, d in cfg.datasets.items() if d.synonyms] == ["webemo"]
    assert cfg.datasets["abstract"].template == "a scene evoking {emotion} to viewers"
    scope = {n: d.zero_shot_split for n, d in cfg.datasets.items() if cfg.roles[n] == "zero_shot"}
    assert scope == {"emotion6": "test", "fi": "test", "artphoto": "all", "abstract": "all",
                     "unbiasedemo": "all"}


def test_table_iv_grid_exists_and_openelm_has_its_tokenizer() -> None:
    cfg = load_config(FLOWS, "paper")
    grid = cfg.spec.grid
    assert grid is not None
    enc = {n: cfg.flows.encoders[n] for n in grid.encoders}
    assert {(e.kind, e.model) for e in enc.values()} == {
        ("open_clip", "ViT-L-14"), ("open_clip", "ViT-L-14-336"), ("open_clip", "ViT-SO400M-14-SigLIP-384"),
        ("hf", "facebook/dinov2-with-registers-large")}
    sources = [cfg.flows.backbones[n].source for n in grid.backbones]
    assert sources == ["apple/OpenELM-270M-Instruct", "apple/OpenELM-450M-Instruct",
                       "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "microsoft/phi-2"]
    for name in grid.backbones:
        if "OpenELM" in cfg.flows.backbones[name].source:  # OpenELM ships no tokenizer
            assert cfg.flows.backbones[name].tokenizer == "meta-llama/Llama-2-7b-hf"


def test_grid_names_are_checked(tmp_path: Path) -> None:
    from tinyemo_core.config import ConfigError

    with pytest.raises(ConfigError, match=r"profiles\.paper\.grid\.backbones\.0: unknown backbone 'gpt9'"):
        load_config(FLOWS, "paper", ["grid.backbones=[gpt9]"])


def test_documented_targets_are_the_row_means() -> None:
    """docs/experiments.md: each row's held-in / zero-shot / total columns are the means of its numbers."""
    text = (ROOT / "docs" / "experiments.md").read_text()
    rows = re.findall(r"^\| `(paper-[\w.]+)` \| ([\d. |]+)\|$", text, re.MULTILINE)
    assert {r[0] for r in rows} == set(ROWS)
    for name, cells in rows:
        v = [float(x) for x in cells.split("|")]
        assert len(v) == 11, name
        assert round(sum(v[:3]) / 3, 2) == pytest.approx(v[8], abs=0.006), name
        assert round(sum(v[3:8]) / 5, 2) == pytest.approx(v[9], abs=0.006), name
        assert round(sum(v[:8]) / 8, 2) == pytest.approx(v[10], abs=0.006), name
