"""Preflight (`tinyemo check`, run before every `tinyemo run`): every problem at once, exit 2, no traceback,
no Prefect server; adapters' layout checks; model resolution against a real (temporary) Hugging Face cache;
served endpoints against a real loopback server; bad --set values in every command."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import data_fixtures as fx
import pytest
import yaml
from typer.testing import CliRunner

from pipelines.cli import app
from tinyemo_core.config import load_config
from tinyemo_core.data.adapters import ADAPTERS
from tinyemo_core.preflight import SMOKE_MARKER, preflight, resources

ROOT = Path(__file__).resolve().parent.parent
PAPER_ROOTS = ("emotionroi", "emoset", "webemo", "emotion6", "fi", "artphoto", "abstract", "unbiasedemo")
PAPER_WEIGHTS = ("encoders.clip-vit-l-14", "backbones.tinyllama-1.1b", "openai/clip-vit-large-patch14",
                 "TinyLlama/TinyLlama-1.1B-Chat-v1.0")
runner = CliRunner()


def _cli(args: list[str], tmp: Path, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    """`tinyemo ARGS` in a fresh process: empty HF cache, downloads off, its own PREFECT_HOME. Returns the
    process and the CPU seconds it used (user + system: what "seconds" means on an idle machine, and not
    inflated when other work shares the cores)."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp / "hf"), "COLUMNS": "220",
                "PREFECT_HOME": str(tmp / "prefect"), "PREFECT_API_URL": "", **env}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return done, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _no_prefect_state(tmp: Path) -> None:
    home = tmp / "prefect"
    assert not home.exists() or not any(home.rglob("*.db")), "a Prefect database was created"


def test_check_paper_names_every_root_and_weight_at_once(tmp_path: Path) -> None:
    done, seconds = _cli(["check", "--profile", "paper"], tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "Traceback" not in out
    for name in PAPER_ROOTS:
        assert f"datasets.{name}" in out
    for weight in PAPER_WEIGHTS:
        assert weight in out, weight
    assert out.count("what to do") == 1  # one table
    assert seconds < 5, seconds
    _no_prefect_state(tmp_path)
    report = json.loads(_cli(["check", "--profile", "paper", "--json"], tmp_path)[0].stdout)
    subjects = {f["subject"] for f in report["findings"] if f["severity"] == "error"}
    assert {f"datasets.{n}" for n in PAPER_ROOTS} <= subjects
    assert all(f["fix"] for f in report["findings"])


def test_run_stops_before_prefect_starts(tmp_path: Path) -> None:
    done, seconds = _cli(["run", "build-dataset", "--profile", "paper"], tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "Traceback" not in out and "/data/EmotionROI" in out and "/data/UnbiasedEmo" in out
    assert seconds < 5, seconds
    _no_prefect_state(tmp_path)


def test_preflight_imports_neither_prefect_nor_torch() -> None:
    code = ("import sys; from tinyemo_core.config import load_config; from tinyemo_core.preflight import "
            "preflight; preflight(load_config('flows.yaml', 'paper')); "
            "bad = [m for m in ('prefect', 'torch', 'open_clip') if m in sys.modules]; assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("layout,make", [
    ("emoset", fx.make_emoset), ("webemo", fx.make_webemo), ("emotionroi", fx.make_emotionroi),
    ("emotion6", fx.make_emotion6), ("fi", fx.make_fi), ("artphoto", fx.make_artphoto),
    ("abstract", fx.make_abstract), ("unbiasedemo", fx.make_unbiasedemo), ("emotic", fx.make_emotic),
    ("emotic", fx.make_emotic_mat), ("emotic", fx.make_emotic_csv),
])
def test_adapters_check_their_layout(tmp_path: Path, layout: str, make) -> None:
    good, empty = tmp_path / "good", tmp_path / "empty"
    good.mkdir()
    empty.mkdir()
    make(good)
    assert ADAPTERS[layout].check(good) == []
    problems = ADAPTERS[layout].check(empty)
    if layout != "fi":  # FI's layout is just class folders: an empty folder has none
        assert problems and all(str(empty) in p for p in problems), problems
    assert ADAPTERS[layout].check(tmp_path / "absent")


def _config(tmp: Path, **profile_extra) -> Path:
    """flows.yaml with one real small dataset per role and the given profile fields."""
    if not (tmp / "roi").exists():
        (tmp / "roi").mkdir()
        fx.make_emotionroi(tmp / "roi")
    data = yaml.safe_load((ROOT / "flows.yaml").read_text())
    data["storage_root"] = str(tmp / "storage")
    data["datasets"] = {"roi": {"layout": "emotionroi", "root": str(tmp / "roi")},
                        "broken": {"layout": "emoset", "root": str(tmp / "roi")}}
    data["backbones"]["hub"] = {"source": "someorg/some-lm"}
    data["profiles"] = {"p": {"held_in": ["roi"], "encoder": "demo-tiny-clip", "backbone": "minilm",
                              **profile_extra}}
    path = tmp / "flows.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_layout_problems_and_wrong_layouts_are_named(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path, zero_shot=["broken"]), "p")
    report = preflight(cfg, "build-dataset")
    assert [f.subject for f in report.findings if f.severity == "error"] == ["datasets.broken"]
    assert "train.json" in report.findings[0].problem


def _fake_hub_cache(hub: Path, repo: str, files: dict[str, str]) -> None:
    """The Hugging Face cache layout (models--org--name/refs/main + snapshots/<commit>/...)."""
    folder = hub / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    for name, text in files.items():
        path = folder / "snapshots" / commit / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_hub_models_resolve_from_the_cache_or_downloads(tmp_path: Path) -> None:
    config = _config(tmp_path, backbone="hub")
    args = ["check", "--config", str(config), "--profile", "p", "--flow", "embed-labels", "--json"]
    missing = json.loads(_cli(args, tmp_path)[0].stdout)
    assert [f["subject"] for f in missing["findings"]] == ["backbones.hub"]
    assert "hf download someorg/some-lm" in missing["findings"][0]["fix"]
    allowed = json.loads(_cli(args, tmp_path, HF_HUB_OFFLINE="0")[0].stdout)
    assert allowed["ok"] and not allowed["findings"]
    _fake_hub_cache(tmp_path / "hf" / "hub", "someorg/some-lm",
                    {"config.json": "{}", "model.safetensors": ""})
    cached = json.loads(_cli(args, tmp_path)[0].stdout)
    assert cached["ok"] and not cached["findings"], cached


class _Models(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = json.dumps({"object": "list", "data": [{"id": "served-vlm"}]}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_served_generator_must_answer_and_see_images(tmp_path: Path) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v1"
    try:
        def findings(**generation) -> list:
            gen = {"backend": "openai", "base_url": url, "model": "served-vlm", "datasets": ["roi"],
                   **generation}
            cfg = load_config(_config(tmp_path, generation=gen), "p")
            return [f for f in preflight(cfg, "generate-qa").findings if f.check != "disk"]

        assert findings() == []
        wrong = findings(model="other")
        assert len(wrong) == 1 and "served-vlm" in wrong[0].problem and "not 'other'" in wrong[0].problem
        text_only = findings(model="gpt-4", base_url="http://127.0.0.1:9/v1")
        assert {f.check for f in text_only} == {"endpoint", "generator"}
        assert "takes no images" in next(f.problem for f in text_only if f.check == "generator")
    finally:
        server.shutdown()


def test_devices_disk_and_smoke_stores(tmp_path: Path) -> None:
    config = _config(tmp_path)
    cfg = load_config(config, "p", ["encoders.demo-tiny-clip.device=cuda"])
    cuda = [f for f in preflight(cfg, "extract-features").findings if f.check == "device"]
    assert bool(cuda) != resources.cuda_available()
    full = resources.check_disk(tmp_path, {"features": 1e18})
    assert full[0].severity == "error" and "1000000.0 TB" in full[0].problem
    assert resources.check_disk(tmp_path, {"features": 1.0}) == []
    storage = tmp_path / "storage"
    storage.mkdir()
    (storage / SMOKE_MARKER).write_text("{}")
    report = preflight(load_config(config, "p"), "build-dataset")
    assert [f.check for f in report.findings] == ["store"]
    assert preflight(load_config(config, "p"), "build-dataset", smoke=True).ok


@pytest.mark.parametrize("bad", ["x=[1", "training.epochs=0", "training=3", "noequals"])
def test_bad_set_values_never_print_a_traceback(bad: str) -> None:
    commands = [
        ["run", "build-dataset"], ["check"], ["validate"], ["predict", "x.jpg"],
        ["reground", "--map", "joy=glad"], ["reason", "x.jpg"], ["explore", "similar", "a dog"],
        ["import-features", "demo_emoroi", "/nonexistent"],
    ]
    for cmd in commands:
        result = runner.invoke(app, [*cmd, "--config", str(ROOT / "flows.yaml"), "--set", bad])
        assert result.exit_code == 2, (cmd, result.output)
        assert isinstance(result.exception, SystemExit), (cmd, result.exception)
        assert "Traceback" not in result.output
