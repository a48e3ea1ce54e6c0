"""flows.yaml validation: typed config, errors named by path, overrides, profiles."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tinyemo_core.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows.yaml"


def test_both_shipped_profiles_validate() -> None:
    demo = load_config(FLOWS, "demo")
    assert demo.roles == {
        "demo_emoroi": "held_in",
        "demo_emoset": "held_in",
        "demo_webemo": "held_in",
        "demo_synonyms": "zero_shot",
    }
    assert demo.datasets["demo_emoroi"].root.is_absolute()
    paper = load_config(FLOWS, "paper")
    assert paper.encoder.model == "ViT-L-14" and paper.encoder.pretrained == "openai"
    assert paper.spec.training.epochs == 5 and paper.spec.training.batch_size == 32
    assert set(paper.roles) == {
        "emotionroi",
        "emoset",
        "webemo",
        "emotion6",
        "fi",
        "artphoto",
        "abstract",
        "unbiasedemo",
    }


def test_bad_field_is_named_by_path() -> None:
    with pytest.raises(ConfigError, match=r"profiles\.demo\.training\.epochs: .*greater than 0"):
        load_config(FLOWS, "demo", ["training.epochs=0"])
    with pytest.raises(ConfigError, match=r"profiles\.demo\.training\.bogus: Extra inputs"):
        load_config(FLOWS, "demo", ["training.bogus=1"])
    with pytest.raises(ConfigError, match=r"datasets\.demo_emoroi\.layout"):
        load_config(FLOWS, "demo", ["datasets.demo_emoroi.layout=nosuch"])


def test_unknown_references_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"profiles\.demo\.backbone: unknown backbone 'gpt9'"):
        load_config(FLOWS, "demo", ["backbone=gpt9"])
    with pytest.raises(ConfigError, match="no such profile"):
        load_config(FLOWS, "nope")
    data = yaml.safe_load(FLOWS.read_text())
    data["profiles"]["demo"]["zero_shot"] = ["demo_emoroi"]
    bad = tmp_path / "flows.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="listed twice"):
        load_config(bad, "demo")


def test_overrides_change_only_what_they_name() -> None:
    cfg = load_config(FLOWS, "demo", ["backbone=tiny-random-llama", "training.epochs=3"])
    assert cfg.backbone_name == "tiny-random-llama" and cfg.spec.training.epochs == 3
    assert cfg.encoder_name == "demo-tiny-clip"
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(FLOWS, "demo", ["training.epochs"])
