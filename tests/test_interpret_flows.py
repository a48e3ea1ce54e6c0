"""The interpretability instrument through Prefect and the CLI on the demo: neuron-atlas, neuron-ablation and
bias-report flows (cached on rerun), `tinyemo explore similar|concepts|counterfactual` over the stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image, ImageDraw

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    from conftest import write_small_config

    tmp = tmp_path_factory.mktemp("interp")
    config = write_small_config(tmp)
    pairs = tmp / "pairs"
    for kind in ("original", "edited"):
        (pairs / kind).mkdir(parents=True)
    for i in range(2):  # the edit: a white "watermark" box in the corner
        img = Image.new("RGB", (64, 64), (40 + 60 * i, 120, 200 - 50 * i))
        img.save(pairs / "original" / f"p{i}.png")
        ImageDraw.Draw(img).rectangle((40, 48, 63, 63), fill=(255, 255, 255))
        img.save(pairs / "edited" / f"p{i}.png")
    data = yaml.safe_load(config.read_text())
    data["profiles"]["demo"]["interpret"] = {"dataset": "demo_synonyms", "query": "joy", "k": 4,
                                             "top_k": 5, "grid_neurons": 2, "grid_images": 3,
                                             "pairs": str(pairs)}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def test_interpret_flows_and_cache(demo: Path, prefect_harness) -> None:
    from pipelines.flows.interpret import bias_report, neuron_ablation, neuron_atlas

    atlas = neuron_atlas(config=str(demo), profile="demo")
    assert atlas["computed"] and atlas["dataset"] == "demo_synonyms" and atlas["selective"]
    assert Path(atlas["markdown"]).exists() and all(Path(g["png"]).exists() for g in atlas["grids"])
    ablation = neuron_ablation(config=str(demo), profile="demo")
    assert ablation["n"] > 0 and len(ablation["largest"]) > 0 and Path(ablation["png"]).exists()
    report = bias_report(config=str(demo), profile="demo")
    text = Path(report["markdown"]).read_text()
    # retrieval for the text "joy": k=4 ranked rows, nearest first, each shown in the report
    similar = report["artifacts"]["similar"]
    assert [r["rank"] for r in similar] == [1, 2, 3, 4]
    distances = [r["distance"] for r in similar]
    assert distances == sorted(distances) and all(0.0 <= d <= 2.0 for d in distances)
    assert "## 1. Retrieval: 4 nearest to text `joy`" in text
    assert all(f"| {r['rank']} | {r['image_id'][:12]} | {r['label']} | {r['distance']:.3f} |" in text
               for r in similar)
    # the two watermark pairs: both compared, before/after predictions counted, the verdict follows the rates
    cf = report["artifacts"]["counterfactual"]
    assert cf["pairs"] == 2
    assert sum(cf["distribution_before"].values()) == sum(cf["distribution_after"].values()) == 2
    expected = ("the bias changes the decision" if cf["flip_rate"] > cf["thresholds"]["flip_threshold"] else
                "bias present in the embedding space; the decision is unchanged"
                if cf["embedding_shift_rate"] >= cf["thresholds"]["shift_share"] else
                "no measurable effect on the embedding or the decision")
    assert cf["verdict"] == expected and f"**Verdict: {expected}**" in text
    again = neuron_atlas(config=str(demo), profile="demo")
    assert not again["computed"] and again["markdown"] == atlas["markdown"]


def test_explore_cli(demo: Path, prefect_harness) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app
    from pipelines.flows.train_projector import train_projector

    train_projector(config=str(demo), profile="demo")  # cached when the flows above ran first
    runner = CliRunner()
    common = ["--config", str(demo), "--dataset", "demo_synonyms"]
    out = runner.invoke(app, ["explore", "similar", "joy", "-k", "3", *common, "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert len(rows) == 3 and [r["rank"] for r in rows] == [1, 2, 3]
    first = rows[0]["image_id"]
    out = runner.invoke(app, ["explore", "similar", first, "-k", "2", *common, "--json"])
    itself = json.loads(out.output)
    assert itself[0]["image_id"] == first and itself[0]["distance"] == pytest.approx(0.0, abs=1e-4)
    concepts = runner.invoke(app, ["explore", "concepts", first, *common, "--json", "--top", "5"])
    assert concepts.exit_code == 0, concepts.output
    assert len(json.loads(concepts.output)["top_concepts"]) == 5
    pairs = demo.parent / "pairs"
    cf = runner.invoke(app, ["explore", "counterfactual", str(pairs / "original" / "p0.png"),
                             str(pairs / "original" / "p0.png"), "--config", str(demo), "--json"])
    assert cf.exit_code == 0, cf.output
    same = json.loads(cf.output)["pairs"][0]
    assert not same["flipped"] and all(n["change"] == 0 for n in same["neurons"])
    bad = runner.invoke(app, ["explore", "counterfactual", str(pairs), "--neurons", "999999",
                              "--config", str(demo)])
    assert bad.exit_code == 2 and "999999" in bad.output
