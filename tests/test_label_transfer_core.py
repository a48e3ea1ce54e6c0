"""Label transfer without Prefect: GZSL metrics and calibrated stacking, folds, the mixup option's
fingerprint behaviour, the word-derived demo generator (issue 22)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from tinyemo_core.projector.calibration import (
    choose_margin,
    cyclic_derangements,
    gzsl_scores,
    harmonic_mean,
    margin_curve,
    permuted_control,
    stack,
    zsl_accuracy,
)
from tinyemo_core.projector.spec import TrainingSpec
from tinyemo_core.projector.transfer_spec import LabelTransferSpec

ROOT = Path(__file__).resolve().parent.parent


def _brute_force(scores, true, seen, unseen, margin):
    pred = stack(scores, seen, margin).argmax(axis=1)
    per_class = {c: np.mean(pred[true == c] == c) for c in np.unique(true)}
    s = np.mean([per_class[c] for c in seen if c in per_class])
    u = np.mean([per_class[c] for c in unseen if c in per_class])
    return s, u, harmonic_mean(s, u)


def test_margin_curve_matches_stacking_then_argmax() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(60, 6))
    true = rng.integers(0, 6, 60)
    seen, unseen = [0, 2, 3, 5], [1, 4]
    scores[np.isin(true, seen), :][:, seen] += 0.5  # a seen bias
    margins = np.linspace(0, 2, 41)
    acc_s, acc_u, h = margin_curve(scores, true, seen, unseen, margins)
    for i, m in enumerate(margins):
        assert (acc_s[i], acc_u[i], h[i]) == pytest.approx(_brute_force(scores, true, seen, unseen, m))
    result = gzsl_scores(scores, true, seen, unseen, 0.3)
    assert result.n_seen == int(np.isin(true, seen).sum()) and result.n_unseen == 60 - result.n_seen


def test_seen_bias_and_its_calibration() -> None:
    # unseen images score their own word 0.6, every seen word 0.8: uncalibrated U = 0, a margin > 0.2 fixes it
    true = np.array([0, 1, 2, 2, 3, 3])
    scores = np.full((6, 4), 0.1)
    scores[[0, 1], [0, 1]] = 0.9
    scores[2:, :2] = 0.8
    scores[[2, 3, 4, 5], [2, 2, 3, 3]] = 0.6
    assert gzsl_scores(scores, true, [0, 1], [2, 3]).h == 0.0
    fixed = gzsl_scores(scores, true, [0, 1], [2, 3], margin=0.25)
    assert fixed.seen_acc == fixed.unseen_acc == fixed.h == 1.0
    assert zsl_accuracy(scores, true, [2, 3]) == 1.0


def test_choose_margin_takes_the_middle_of_the_best_plateau() -> None:
    margins = np.arange(0, 1.01, 0.1)
    curve = np.array([0, 0.2, 0.5, 0.9, 0.9, 0.9, 0.9, 0.9, 0.4, 0.1, 0])
    assert choose_margin([curve], margins) == (pytest.approx(0.5), pytest.approx(0.9))
    # several pseudo splits: their mean curve decides
    other = np.array([0, 0.2, 0.5, 0.5, 0.5, 0.95, 0.95, 0.5, 0.4, 0.1, 0])
    assert choose_margin([curve, other], margins)[0] == pytest.approx(0.5)


def test_control_permutes_unseen_words_only_with_derangements() -> None:
    for k in (2, 3, 5):
        perms = cyclic_derangements(k)
        assert len(perms) == k - 1 and all((p != np.arange(k)).all() for p in perms)
    vectors = np.eye(5)
    true = np.array([0, 1, 2, 3, 4] * 4)
    projected = vectors[true] + 0.01
    seen, unseen = [0, 1], [2, 3, 4]
    assert gzsl_scores(projected @ vectors.T, true, seen, unseen).h == 1.0
    control = permuted_control(projected, vectors, true, seen, unseen, margin=0.0)
    assert control.seen_acc == 1.0 and control.unseen_acc == 0.0  # every unseen word moved


def test_folds_partition_the_classes_and_refuse_too_few() -> None:
    from tinyemo_core.stages.label_transfer import plan_folds

    words = [f"w{i:02d}" for i in range(10)]
    spec = LabelTransferSpec(folds=3, calibration="stacking", pseudo_splits=2, seed=4)
    folds = plan_folds("d", words, spec)
    assert sorted(w for f in folds for w in f.unseen) == words
    for f in folds:
        assert set(f.seen) | set(f.unseen) == set(words) and not set(f.seen) & set(f.unseen)
        assert len(f.pseudo_unseen) == 2 and all(set(p) < set(f.seen) for p in f.pseudo_unseen)
    assert plan_folds("d", words, spec) == folds  # seeded
    assert plan_folds("d", words, spec.model_copy(update={"seed": 5})) != folds
    assert all(not f.pseudo_unseen for f in plan_folds("d", words, LabelTransferSpec(folds=3)))
    with pytest.raises(ValueError, match="label_transfer.folds"):
        plan_folds("d", words[:5], spec)
    with pytest.raises(ValueError, match="pseudo_unseen"):
        plan_folds("d", words, spec.model_copy(update={"pseudo_unseen": 6}))


def test_new_training_settings_move_no_existing_fingerprint() -> None:
    from tinyemo_core.config import load_config
    from tinyemo_core.stages.train import train_fingerprint

    assert "word_mixup" not in TrainingSpec().model_dump()
    assert "word_mixup" not in TrainingSpec().model_dump_json()
    mixed = TrainingSpec(word_mixup={"weight": 0.5})
    assert mixed.model_dump()["word_mixup"] == {"weight": 0.5, "alpha": 1.0}
    assert TrainingSpec.model_validate(mixed.model_dump()) == mixed

    # the demo and paper-1.53b profiles' run fingerprints as recorded before the option existed
    recorded = {"demo": "df50b98197598fac", "paper-1.53b": "b485c5f98de7e0ab",
                "paper-700m": "3167c565d0fee820"}
    for profile, fingerprint in recorded.items():
        cfg = load_config(ROOT / "flows.yaml", profile)
        held = {n: s for n, s in cfg.datasets.items() if cfg.roles[n] == "held_in"}
        fp = train_fingerprint(held, dict.fromkeys(held, "m"), dict.fromkeys(held, "f"), "labels",
                               cfg.spec.training)
        assert fp == fingerprint, profile
        with_mixup = cfg.spec.training.model_copy(update={"word_mixup": mixed.word_mixup})
        assert train_fingerprint(held, dict.fromkeys(held, "m"), dict.fromkeys(held, "f"), "labels",
                                 with_mixup) != fingerprint


def test_word_mixup_changes_training_and_is_recorded(tmp_path: Path) -> None:
    import torch

    from tinyemo_core.projector.io import read_trained_labels
    from tinyemo_core.projector.train import TrainData, train_projector
    from tinyemo_core.store.atomic import read_json

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 8)).astype(np.float32)
    y = np.repeat(np.arange(4), 10)
    table = rng.normal(size=(6, 16)).astype(np.float32)
    texts = [f"t{i}" for i in range(6)]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        spec = TrainingSpec(epochs=2, batch_size=16, synonym_prob=0)
        plain = train_projector(TrainData(x, y), None, table, spec, tmp_path / "plain", progress=False,
                                label_texts=texts)
        mixup = TrainingSpec(**spec.model_dump(), word_mixup={"weight": 1.0})
        mixed = train_projector(TrainData(x, y), None, table, mixup, tmp_path / "mix", progress=False)
    finally:
        torch.set_num_threads(before)
    assert plain.history[-1]["train_loss"] != mixed.history[-1]["train_loss"]
    assert "word_mixup" not in read_json(tmp_path / "plain" / "config.json")["spec"]
    assert read_json(tmp_path / "mix" / "config.json")["spec"]["word_mixup"] == {"weight": 1.0, "alpha": 1.0}
    assert read_trained_labels(tmp_path / "plain") == ["t0", "t1", "t2", "t3"]
    assert read_trained_labels(tmp_path / "mix") is None  # no label_texts given: unknown, never guessed


def test_word_demo_is_deterministic_and_follows_word_geometry(tmp_path: Path) -> None:
    from tinyemo_core.data.demo_words import generate_word_demo, word_coefficients

    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(6, 32))
    vectors[1] = vectors[0] + 0.05 * rng.normal(size=32)  # word 1 is close to word 0
    coefs = word_coefficients(vectors, dims=4, seed=0)
    dist = {(a, b): np.linalg.norm(coefs[a] - coefs[b]) for a, b in itertools.combinations(range(6), 2)}
    assert min(dist, key=dist.get) == (0, 1)
    words = [f"w{i}" for i in range(6)]
    first = generate_word_demo(tmp_path / "a", words, vectors, images_per_class=3, image_size=16, dims=4)
    again = generate_word_demo(tmp_path / "a", words, vectors, images_per_class=3, image_size=16, dims=4)
    other = generate_word_demo(tmp_path / "b", words, vectors, images_per_class=3, image_size=16, dims=4)
    assert first["computed"] and not again["computed"] and other["computed"]
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert len(files) == 18 and all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
                                    for f in files)
    with pytest.raises(ValueError, match="dims"):
        word_coefficients(vectors, dims=6, seed=0)


def test_label_transfer_settings_are_checked_with_the_config() -> None:
    from tinyemo_core.config import ConfigError, load_config

    cfg = load_config(ROOT / "flows.yaml", "demo-label-transfer")
    assert cfg.spec.label_transfer.calibration == "stacking"
    assert load_config(ROOT / "flows.yaml", "paper").spec.label_transfer is None  # off for the paper profiles
    for override, message in (("label_transfer.datasets=[nope]", "label_transfer.datasets.0: 'nope'"),
                              ("label_transfer.folds=9", "label_transfer.folds: 9 folds need at least 18"),
                              ("label_transfer.demo_words.dataset=demo_emoroi",
                               "demo_words.dataset: 'demo_emoroi' is not a dataset of this profile"),
                              ("label_transfer.calibration=always", "label_transfer.calibration")):
        with pytest.raises(ConfigError, match=message):
            load_config(ROOT / "flows.yaml", "demo-label-transfer", [override])
