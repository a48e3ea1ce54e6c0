"""Projector training: learns a separable problem, deterministic, resumable, best vs last, memmap input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tinyemo_core.projector import TrainData, TrainingSpec, load_projector, project, train_projector
from tinyemo_core.projector.data import draw_synonyms, epoch_batches, steps_per_epoch
from tinyemo_core.projector.train import validation_accuracy

V, D_IN, D_OUT = 8, 32, 48


def synthetic(n: int, seed: int = 0, label_seed: int = 1, dtype: type = np.float16) -> tuple[np.ndarray, ...]:
    """Gaussian clusters in 32-d, one per class; random label vectors in 48-d."""
    centres = np.random.default_rng(label_seed).normal(size=(V, D_IN)) * 2.5
    rng = np.random.default_rng(seed)
    y = rng.integers(0, V, n)
    x = (centres[y] + rng.normal(size=(n, D_IN))).astype(dtype)
    return x, y, np.random.default_rng(label_seed + 100).normal(size=(V, D_OUT)).astype(np.float32)


def two_datasets(n: int, seed: int) -> TrainData:
    """Classes 0-4 belong to dataset "a", classes 3-7 to dataset "b" (3, 4 shared words)."""
    x, y, _ = synthetic(n, seed)
    group = np.where(y < 3, 0, np.where(y > 4, 1, np.arange(n) % 2))
    return TrainData(x, y, group, [np.arange(0, 5), np.arange(3, 8)], ["a", "b"])


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: one intra-op thread is faster than two, especially on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


LABELS = synthetic(1)[2]
SPEC = TrainingSpec(epochs=4, batch_size=32, max_lr=5e-3, pct_start=0.1)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


@pytest.mark.parametrize("loss", ["ntxent", "cosine"])
def test_learns_separable_problem_and_writes_run(tmp_path: Path, loss: str) -> None:
    train, val = two_datasets(401, seed=2), two_datasets(151, seed=3)
    seen: list[dict] = []
    result = train_projector(train, val, LABELS, SPEC.model_copy(update={"loss": loss}), tmp_path,
                             progress=False, on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == [1, 2, 3, 4]
    assert result.history[-1]["val_acc"] > 0.95
    assert set(result.history[-1]["val_acc_by_dataset"]) == {"a", "b"}
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    names = {p.name for p in tmp_path.iterdir()}
    assert {"best.safetensors", "last.safetensors", "config.json", "metrics.json"} <= names
    assert "checkpoint.pt" not in names  # removed once done
    model = load_projector(tmp_path, "best")
    assert not model.training and model.in_dim == D_IN and model.out_dim == D_OUT
    # the recorded best accuracy is what the saved best weights really score
    assert validation_accuracy(model, val, LABELS / np.linalg.norm(LABELS, axis=1, keepdims=True)) == \
        result.history[result.best_epoch - 1]["val_acc_by_dataset"]
    emb = project(model, val.features, batch_size=7)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)


def test_deterministic_and_finished_run_is_reused(tmp_path: Path) -> None:
    train, val = two_datasets(203, seed=4), two_datasets(60, seed=5)
    a = train_projector(train, val, LABELS, SPEC, tmp_path / "a", progress=False)
    b = train_projector(train, val, LABELS, SPEC, tmp_path / "b", progress=False)
    assert_same_weights(a.last_path, b.last_path)
    assert_same_weights(a.best_path, b.best_path)
    before = (tmp_path / "a" / "last.safetensors").stat().st_mtime_ns
    again = train_projector(train, val, LABELS, SPEC, tmp_path / "a", progress=False,
                            on_epoch=lambda r: pytest.fail("a finished run must not train again"))
    assert again.reused and again.best_epoch == a.best_epoch
    assert (tmp_path / "a" / "last.safetensors").stat().st_mtime_ns == before
    seed1 = SPEC.model_copy(update={"seed": 1})
    with pytest.raises(ValueError, match="other settings"):
        train_projector(train, val, LABELS, seed1, tmp_path / "a", progress=False)
    other = train_projector(train, val, LABELS, seed1, tmp_path / "c", progress=False)
    assert not torch.equal(weights(other.last_path)["net.0.weight"], weights(a.last_path)["net.0.weight"])


class Stop(Exception):
    """Stands in for a kill right after an epoch's checkpoint was written."""


def test_resume_after_stop_equals_straight_run(tmp_path: Path) -> None:
    train, val = two_datasets(203, seed=6), two_datasets(60, seed=7)
    train.synonym_rows = train.group_ids == 0  # dataset "a" asks for synonyms
    synonyms = {0: [5], 3: [6, 7]}

    def stop_after_2(record: dict) -> None:
        if record["epoch"] == 2:
            raise Stop

    spec = SPEC.model_copy(update={"synonym_prob": 0.5})
    with pytest.raises(Stop):
        train_projector(train, val, LABELS, spec, tmp_path / "r", synonyms=synonyms, progress=False,
                        on_epoch=stop_after_2)
    assert (tmp_path / "r" / "checkpoint.pt").exists()
    resumed = train_projector(train, val, LABELS, spec, tmp_path / "r", synonyms=synonyms, progress=False)
    straight = train_projector(train, val, LABELS, spec, tmp_path / "s", synonyms=synonyms, progress=False)
    assert resumed.resumed_from_epoch == 2 and straight.resumed_from_epoch == 0
    assert_same_weights(resumed.last_path, straight.last_path)
    assert_same_weights(resumed.best_path, straight.best_path)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in straight.history]


def test_best_checkpoint_differs_from_last_when_validation_drops(tmp_path: Path) -> None:
    """Validation labels are a permutation of the training classes: the better the projector learns the
    training task, the worse it scores on this validation set, so an early epoch must be kept as best."""
    train = two_datasets(401, seed=8)
    x, y, _ = synthetic(200, seed=9)
    val = TrainData(x, (y + 1) % V)
    spec = SPEC.model_copy(update={"max_lr": 3e-4})  # slow enough that epoch 1 is only partly trained
    result = train_projector(train, val, LABELS, spec, tmp_path, progress=False)
    accs = [h["val_acc"] for h in result.history]
    assert result.best_epoch == int(np.argmax(accs)) + 1 < spec.epochs
    assert accs[-1] < max(accs)
    best, last = weights(result.best_path), weights(result.last_path)
    assert not torch.equal(best["net.4.weight"], last["net.4.weight"])
    table = LABELS / np.linalg.norm(LABELS, axis=1, keepdims=True)
    assert validation_accuracy(load_projector(tmp_path, "best"), val, table)["0"] == max(accs)
    assert validation_accuracy(load_projector(tmp_path, "last"), val, table)["0"] == accs[-1]


def test_memmap_input_matches_in_memory(tmp_path: Path) -> None:
    x, y, _ = synthetic(150, seed=10)
    np.save(tmp_path / "feats.npy", x)
    mm = np.load(tmp_path / "feats.npy", mmap_mode="r")
    assert isinstance(mm, np.memmap) and mm.dtype == np.float16
    spec = SPEC.model_copy(update={"epochs": 2})
    a = train_projector(TrainData(mm, y), None, LABELS, spec, tmp_path / "mm", progress=False)
    b = train_projector(TrainData(x, y), None, LABELS, spec, tmp_path / "mem", progress=False)
    assert_same_weights(a.last_path, b.last_path)
    assert a.best_epoch == 2 and a.best_val_acc is None  # without validation, best = last


def test_batches_cover_every_sample_and_never_leave_a_single_row() -> None:
    rng = np.random.default_rng(0)
    for n, bs in [(65, 32), (64, 32), (33, 32), (2, 32), (97, 8)]:
        batches = list(epoch_batches(n, bs, rng))
        assert len(batches) == steps_per_epoch(n, bs)
        assert sorted(np.concatenate(batches).tolist()) == list(range(n))
        assert min(len(b) for b in batches) >= 2


def test_synonym_draw_per_sample_per_epoch() -> None:
    ids = np.zeros(4000, dtype=np.int64)
    syn = {0: [1, 2, 3]}
    none = draw_synonyms(ids, syn, 0.0, np.random.default_rng(0))
    assert (none == 0).all()
    e1, e2 = (draw_synonyms(ids, syn, 0.5, np.random.default_rng(s)) for s in (1, 2))
    assert 0.45 < (e1 != 0).mean() < 0.55
    assert set(np.unique(e1).tolist()) == {0, 1, 2, 3}
    assert (e1 != e2).any()  # a different draw each epoch
    assert (draw_synonyms(ids, syn, 1.0, np.random.default_rng(3)) != 0).all()
    assert (ids == 0).all()  # input untouched


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    x, y, _ = synthetic(20)
    with pytest.raises(ValueError, match="outside label_vectors"):
        train_projector(TrainData(x, y + V), None, LABELS, SPEC, tmp_path, progress=False)
    with pytest.raises(ValueError, match="not among its candidates"):
        TrainData(x, y, np.zeros(20, dtype=int), [np.array([0])])
    with pytest.raises(ValueError, match="label_ids"):
        TrainData(x, y[:5])
