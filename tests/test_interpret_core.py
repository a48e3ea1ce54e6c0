"""Interpretability core: activations, atlas, closed-form ablation, probing, counterfactual summaries."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from tinyemo_core.interpret import ablation, activations, atlas, counterfactual, probing
from tinyemo_core.projector.model import MetricProjector


def _model(in_dim=12, hidden=20, out=16, seed=0) -> MetricProjector:
    torch.manual_seed(seed)
    m = MetricProjector(in_dim, out, hidden_dim=hidden)
    with torch.no_grad():  # non-trivial BatchNorm running statistics, as after training
        m.net[1].running_mean.uniform_(-0.5, 0.5)
        m.net[1].running_var.uniform_(0.5, 2.0)
        m.net[1].weight.uniform_(-1.5, 1.5)
        m.net[1].bias.uniform_(-0.3, 0.3)
    return m.eval()


@pytest.mark.parametrize("point,module", [("linear", 0), ("bn", 1), ("gelu", 2)])
def test_activations_equal_a_forward_hook(point: str, module: int) -> None:
    m = _model()
    x = np.random.default_rng(1).normal(size=(37, 12)).astype(np.float32)
    seen = []
    handle = m.net[module].register_forward_hook(lambda _m, _i, out: seen.append(out.detach().clone()))
    with torch.no_grad():
        expected_proj = m(torch.from_numpy(x)).numpy()
    handle.remove()
    acts, proj = activations.forward_with_activations(m, x, point, batch_size=10)  # several batches
    np.testing.assert_allclose(acts, seen[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(proj, expected_proj, rtol=1e-5, atol=1e-6)
    m.train()
    activations.activations(m, x, point)
    assert m.training  # the caller's mode is restored; BatchNorm was read in eval mode
    np.testing.assert_allclose(activations.activations(m.eval(), x, point), acts, rtol=1e-6)


def test_unknown_neuron_and_point_are_clear_errors() -> None:
    with pytest.raises(IndexError, match="neuron 20 does not exist.*20 neurons"):
        activations.check_neurons([3, 20], 20)
    with pytest.raises(ValueError, match="unknown activation point 'relu'"):
        activations.check_point("relu")
    m = _model()
    with pytest.raises(IndexError, match="neuron 99"):
        ablation.ablate_all(m, np.zeros((2, 12), np.float32), np.zeros(2, int), np.eye(3, 16), neurons=[99])
    with pytest.raises(ValueError, match=r"features must have shape \(N, 12\)"):
        activations.activations(m, np.zeros((2, 5), np.float32))


def test_detection_rate_and_top_k_find_a_one_class_neuron() -> None:
    rng = np.random.default_rng(0)
    n, h = 200, 8
    labels = ["cat" if i % 4 == 0 else "dog" for i in range(n)]  # 25 % cats
    acts = rng.normal(0, 0.1, size=(n, h)).astype(np.float32)
    cats = np.array([lab == "cat" for lab in labels])
    acts[cats, 5] += 3.0  # neuron 5 fires only for cats
    attrs = ['{"subject": "park"}' if i % 2 else '{"subject": "beach", "object": ["ball", "tree"]}'
             for i in range(n)]
    idx, val = atlas.top_k(acts, k=50, block=37)  # several row blocks
    assert idx.shape == (h, 50)
    assert np.all(np.diff(val, axis=1) <= 0)  # highest first
    expected = np.argsort(-acts[:, 5], kind="stable")[:50]
    np.testing.assert_array_equal(idx[5], expected)
    rates = atlas.detection_rates(idx, atlas.class_matrices([[x] for x in labels], attrs))
    by = {(r["neuron"], r["attribute"], r["value"]): r for r in rates}
    assert by[(5, "label", "cat")]["rate"] == 1.0  # all 50 cats (there are exactly 50)
    assert by[(5, "label", "cat")]["prevalence"] == 0.25
    assert (5, "label", "dog") not in by
    assert by[(5, "subject", "beach")]["rate"] == 1.0  # every 4th row is even -> beach
    best = atlas.most_selective(rates, per_class=1)
    top_cat = next(r for r in best if r["attribute"] == "label" and r["value"] == "cat")
    assert top_cat["neuron"] == 5 and top_cat["rank"] == 1
    assert {r["attribute"] for r in best} == {"label", "subject", "object"}


def test_subset_query_ranks_the_subsets_neuron() -> None:
    acts = np.random.default_rng(0).normal(size=(100, 6)).astype(np.float32)
    acts[:10, 2] += 5
    ranked = atlas.subset_neurons(acts, range(10), top=3)
    assert ranked[0]["neuron"] == 2 and ranked[0]["zscore"] > 1.5
    with pytest.raises(ValueError, match="subset is empty"):
        atlas.subset_neurons(acts, [])


def _task(seed=0, n=120, classes=4):
    rng = np.random.default_rng(seed)
    m = _model(seed=seed)
    x = rng.normal(size=(n, 12)).astype(np.float32)
    lab = probing.unit(rng.normal(size=(classes, 16)))
    with torch.no_grad():
        pred = (m(torch.from_numpy(x)).numpy() @ lab.T).argmax(1)
    y = np.where(rng.random(n) < 0.7, pred, rng.integers(0, classes, n))  # ~75 % accuracy baseline
    return m, x, y, lab


@pytest.mark.parametrize("point", ["gelu", "linear"])
def test_vectorised_ablation_equals_the_naive_loop(point: str) -> None:
    m, x, y, lab = _task()
    fast = ablation.ablate_all(m, x, y, lab, point, max_block=500)  # forces several row blocks
    slow = ablation.ablate_naive(m, x, y, lab, point)
    assert fast.baseline_accuracy == pytest.approx(slow.baseline_accuracy)
    np.testing.assert_allclose(fast.accuracy, slow.accuracy)
    np.testing.assert_array_equal(fast.flips, slow.flips)
    np.testing.assert_allclose(fast.true_cosine_change, slow.true_cosine_change, atol=1e-5)
    assert fast.flips.sum() > 0  # the case is not trivial: some ablations change predictions


def test_ablating_a_silent_neuron_changes_nothing_and_a_dominant_one_does() -> None:
    m, x, y, lab = _task(seed=3)
    with torch.no_grad():
        m.net[4].weight[:, 7] = 0  # neuron 7 has no outgoing weight
        m.net[4].weight[:, 4] *= 60  # neuron 4 dominates the output
        pred = (m(torch.from_numpy(x)).numpy() @ lab.T).argmax(1)
    res = ablation.ablate_all(m, x, pred, lab)  # labels = the model's own predictions: baseline 100 %
    assert res.baseline_accuracy == 1.0
    assert res.accuracy[7] == 1.0 and res.flips[7] == 0
    assert res.true_cosine_change[7] == pytest.approx(0.0, abs=1e-9)
    assert res.accuracy[4] < 0.9
    assert res.rows()[4]["delta"] < -0.1


def test_rank_scores_and_bundled_concepts(tmp_path) -> None:
    q = probing.unit(np.array([1.0, 0.0, 0.0]))
    vecs = np.array([[0, 1, 0], [1, 0.1, 0], [-1, 0, 0]], np.float32)
    rows = probing.rank(q, vecs, ["b", "a", "z"], top=1, bottom=1)
    assert [r["name"] for r in rows] == ["a", "z"] and [r["rank"] for r in rows] == [1, 3]
    assert rows[1]["cosine"] == pytest.approx(-1) and rows[1]["distance"] == pytest.approx(2)
    assert rows[1]["l2"] == pytest.approx(2)
    concepts = probing.load_concepts()
    assert len(concepts.texts) == 200 and len(set(concepts.texts)) == 200
    assert {"related", "opposite", "non_related"} <= set(concepts.groups)
    assert "feline anger" in concepts.texts
    txt = tmp_path / "mine.txt"
    txt.write_text("# mine\njoy\n\nwatermark\n")
    assert probing.load_concepts(txt).texts == ["joy", "watermark"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups: {a: [1, 2]}\n")
    with pytest.raises(ValueError, match="group 'a' must be a list of strings"):
        probing.load_concepts(bad)


def test_counterfactual_identical_pair_reports_no_change() -> None:
    rng = np.random.default_rng(0)
    act, proj, lab = rng.normal(size=20), rng.normal(size=16), rng.normal(size=(3, 16))
    pair = counterfactual.compare_pair("same", act, act.copy(), proj, proj.copy(), ["a", "b", "c"], lab,
                                       [1, 5])
    assert all(x["change"] == 0 for x in pair["neurons"])
    assert all(d["change"] == 0 for d in pair["distances"])
    assert not pair["flipped"] and not pair["embedding_shift"]
    summary = counterfactual.summarise_pairs([pair])
    assert summary["verdict"].startswith("no measurable effect")
    other = next(i for i, w in enumerate("abc") if w != pair["prediction_before"])
    moved = counterfactual.compare_pair("moved", act, act + 1, proj, lab[other], ["a", "b", "c"], lab, [1])
    assert moved["prediction_after"] == "abc"[other] and moved["flipped"]
    assert moved["neurons"][0]["change"] == pytest.approx(1)
    assert counterfactual.summarise_pairs([pair, moved])["decision_changed"]


def test_activation_store_missing_is_a_clear_error(tmp_path) -> None:
    from tinyemo_core.store.activations import ActivationStore

    store = ActivationStore(tmp_path / "activations" / "run" / "ds", "fp1")
    with pytest.raises(FileNotFoundError, match="is missing; build it first"):
        store.activations()
    rows = pa.table({"image_id": ["a", "b"], "path": ["a.png", "b.png"]})

    def fill(acts, proj):
        acts[:] = 1
        proj[:] = probing.unit(np.ones((2, 4)))

    store.write(rows, fill, hidden_dim=3, out_dim=4)
    assert store.complete() and store.activations().shape == (2, 3)
    assert store.row_of(["b"]) == [1]
    with pytest.raises(KeyError, match="'zz' is not in"):
        store.row_of(["zz"])
    stale = ActivationStore(store.root, "fp2")
    with pytest.raises(FileNotFoundError, match="stale fingerprint"):
        stale.projected()
