"""Benchmark: the pipeline's training task vs a bare HF Trainer, and cached patch tokens vs the live ViT.

1. ``tokens_per_s``: stage 2 ("finetune": connector + LLM) on the same tiny reasoning VLM, the same records,
   the same ``TrainingArguments`` and so the same batches, through :func:`tinyemo_core.finetune.trainer.
   train_model` (progress callback, token counter, checkpoint) and through a bare ``transformers.Trainer``.
   Both log every step; the median per-step *CPU* time (one torch thread) over ``--repeats`` alternating
   runs of each gives ``ratio = pipeline tokens/s / bare tokens/s`` (goal >= 0.9); wall-clock medians too.
2. ``patches``: one training step (forward + backward + AdamW) at a shape scaled from the paper's
   (CLIP ViT-L/14 at 224 px = 256 patch tokens kept as is; widths and depths scaled down) with the ViT run
   live vs patch tokens read from a cache (``use_cached_patches``): the step-time ratio, the max |logit
   difference| of the two paths, and the analytic FLOP share of the frozen ViT at the scaled and at the paper
   shape (ViT-L/14 + TinyLlama-1.1B).

The machine is shared: the 1-minute load average before and after is printed. The last stdout line is JSON.

    python bench/finetune.py [--steps 30] [--repeats 3] [--patch-steps 5]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from tinyemo_core.finetune.data import load_export
from tinyemo_core.finetune.model import use_cached_patches
from tinyemo_core.finetune.recipes import get_recipe
from tinyemo_core.finetune.spec import ModelSpec, TinyModelSpec, TrainArgs
from tinyemo_core.finetune.tiny import tiny_exports
from tinyemo_core.finetune.trainer import train_model, training_arguments


class Counting:
    """Collator wrapper counting attention-mask tokens (what the pipeline's counter counts)."""

    def __init__(self, collator) -> None:
        self.collator, self.tokens = collator, 0

    def __call__(self, items):
        batch = self.collator(items)
        self.tokens += int(batch["attention_mask"].sum())
        return batch


class Clock:
    """Per-step CPU and wall time from the per-step log event (both runs log every step): CPU time is what
    the shared machine's load disturbs least."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, float]] = []

    def __call__(self, *_: object, **__: object) -> None:
        self.marks.append((time.process_time(), time.perf_counter()))

    def steps(self) -> tuple[list[float], list[float]]:
        cpu = [b[0] - a[0] for a, b in zip(self.marks, self.marks[1:], strict=False)]
        wall = [b[1] - a[1] for a, b in zip(self.marks, self.marks[1:], strict=False)]
        return cpu, wall


def bare_trainer(model, dataset, collator, args: TrainArgs, out: Path, trainable, clock: Clock) -> int:
    from transformers import Trainer, TrainerCallback

    class OnLog(TrainerCallback):
        def on_log(self, *a, **kw):
            clock()

    for name, p in model.named_parameters():
        p.requires_grad_(trainable(name))
    counter = Counting(collator)
    trainer = Trainer(model=model, args=training_arguments(args, out), train_dataset=dataset,
                      data_collator=counter, callbacks=[OnLog()])
    trainer.train()
    return counter.tokens


def throughput(work: Path, steps: int, repeats: int) -> dict:
    recipe = get_recipe("tinyemo")
    exports = tiny_exports(work, 16)
    records = load_export(exports["emoreason_train"])
    base, processor = recipe.build(ModelSpec(tiny=TinyModelSpec(hidden=96, layers=2, vision_hidden=64,
                                                                image_size=64, patch=8)))
    dataset = recipe.dataset(records, processor, work, "finetune")
    args = TrainArgs(learning_rate=2e-5, max_steps=steps, per_device_train_batch_size=4, save_steps=steps,
                     logging_steps=1, precision="fp32")
    trainable = recipe.trainable("finetune")
    ours, bare = Clock(), Clock()
    bare_trainer(copy.deepcopy(base), dataset, recipe.collator(processor), args, work / "warm", trainable,
                 Clock())
    tokens: dict[str, int] = {}
    for r in range(2 * repeats):  # bare, ours, ours, bare, ...: neither always runs first
        clock = Clock()
        if r % 4 in (0, 3):
            tokens["bare"] = bare_trainer(copy.deepcopy(base), dataset, recipe.collator(processor), args,
                                          work / f"bare{r}", trainable, clock)
            bare.marks += [(float("nan"), float("nan"))] + clock.marks  # nan: no delta across runs
        else:
            res = train_model(copy.deepcopy(base), dataset, recipe.collator(processor), args,
                              work / f"ours{r}", trainable=trainable, processor=processor, on_progress=clock)
            tokens["pipeline"] = res["tokens"]
            ours.marks += [(float("nan"), float("nan"))] + clock.marks
    per_step = tokens["pipeline"] / steps

    def med(xs: list[float]) -> float:
        xs = sorted(x for x in xs if x == x)
        return xs[len(xs) // 2]

    (oc, ow), (bc, bw) = ours.steps(), bare.steps()
    return {"steps": steps, "repeats": repeats, "tokens_per_run": tokens["pipeline"],
            "same_tokens": tokens["pipeline"] == tokens["bare"],
            "pipeline_tokens_per_s_cpu": round(per_step / med(oc), 1),
            "bare_tokens_per_s_cpu": round(per_step / med(bc), 1),
            "ratio": round(med(bc) / med(oc), 3),
            "pipeline_tokens_per_s_wall": round(per_step / med(ow), 1),
            "bare_tokens_per_s_wall": round(per_step / med(bw), 1),
            "ratio_wall": round(med(bw) / med(ow), 3)}


def flops(vit: dict, llm: dict, text_tokens: int) -> dict:
    """Analytic FLOPs per image: frozen ViT forward vs LLM stage-2 training (fwd + bwd = 3x forward)."""
    n = vit["tokens"] + 1  # + CLS
    vit_fwd = 2 * vit["params"] * n + 4 * vit["layers"] * n * n * vit["width"]
    t = vit["tokens"] + text_tokens
    llm_fwd = 2 * llm["params"] * t + 4 * llm["layers"] * t * t * llm["width"]
    return {"vit_forward_gflop": round(vit_fwd / 1e9, 2), "llm_train_gflop": round(3 * llm_fwd / 1e9, 2),
            "vit_share_stage2": round(vit_fwd / (vit_fwd + 3 * llm_fwd), 4),
            "vit_share_stage1": round(vit_fwd / (vit_fwd + 2 * llm_fwd), 4)}  # stage 1: no LLM weight grads


def _block_params(width: int, layers: int, mlp: int, gated: bool) -> int:
    return layers * (4 * width * width + (3 if gated else 2) * width * mlp)


def patches(work: Path, steps: int) -> dict:
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaForConditionalGeneration

    from tinyemo_core.finetune.model import _llava_config, _processor, tiny_tokenizer

    # ViT-L/14 @224 (24 x 1024, 256 patches) and TinyLlama (22 x 2048) scaled: widths / 8, depths / 4.
    vw, vl, lw, ll = 128, 6, 256, 6
    tok = tiny_tokenizer()
    vision = CLIPVisionConfig(hidden_size=vw, intermediate_size=4 * vw, num_hidden_layers=vl,
                              num_attention_heads=4, image_size=224, patch_size=14, projection_dim=vw)
    text = LlamaConfig(hidden_size=lw, intermediate_size=int(2.75 * lw), num_hidden_layers=ll,
                       num_attention_heads=4, num_key_value_heads=4, vocab_size=len(tok),
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                       pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(_llava_config(vision, text, tok.convert_tokens_to_ids("<image>")))
    from transformers import CLIPImageProcessor

    processor = _processor(CLIPImageProcessor(size={"shortest_edge": 224},
                                              crop_size={"height": 224, "width": 224}), tok, 14)
    recipe = get_recipe("tinyemo")
    records = load_export(tiny_exports(work / "p", 4)["emoreason_train"])
    batch = recipe.collator(processor)([recipe.dataset(records, processor, work / "p", "finetune")[i]
                                        for i in range(2)])
    with torch.no_grad():
        hs = model.model.vision_tower(batch["pixel_values"], output_hidden_states=True).hidden_states
        cached = {**batch, "pixel_values": hs[-2][:, 1:].clone()}
    trainable = recipe.trainable("finetune")
    for name, p in model.named_parameters():
        p.requires_grad_(trainable(name))

    live_model, cache_model = copy.deepcopy(model), use_cached_patches(copy.deepcopy(model))
    with torch.no_grad():
        diff = float((live_model.eval()(**batch).logits - cache_model.eval()(**cached).logits).abs().max())
    runs = [(live_model.train(), batch, []), (cache_model.train(), cached, [])]
    opts = [torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-5) for m, _, _ in runs]
    for _ in range(steps):  # interleaved steps, best of each: the shared machine's load hits both alike
        for (m, b, times), opt in zip(runs, opts, strict=True):
            t0 = time.perf_counter()
            m(**b).loss.backward()
            opt.step()
            opt.zero_grad()
            times.append(time.perf_counter() - t0)
    live, cache = min(runs[0][2]), min(runs[1][2])
    text_tokens = int(batch["attention_mask"].sum(1).float().mean()) - 256
    scaled = flops({"tokens": 256, "params": _block_params(vw, vl, 4 * vw, False), "layers": vl, "width": vw},
                   {"params": _block_params(lw, ll, int(2.75 * lw), True), "layers": ll, "width": lw},
                   text_tokens)
    vit_l = {"tokens": 256, "params": _block_params(1024, 24, 4096, False), "layers": 24, "width": 1024}
    paper = flops(vit_l, {"params": _block_params(2048, 22, 5632, True), "layers": 22, "width": 2048}, 150)
    return {"shape": {"vit": f"{vl}x{vw} @224/14 (256 patches)", "llm": f"{ll}x{lw}", "batch": 2,
                      "text_tokens": text_tokens},
            "live_step_s": round(live, 4), "cached_step_s": round(cache, 4),
            "speedup": round(live / cache, 3), "max_abs_logit_diff": diff,
            "flops_scaled": scaled, "flops_paper": paper,
            "storage_vit_l14_fp16_mb_per_image": round(256 * 1024 * 2 / 2**20, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--patch-steps", type=int, default=5)
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)  # one thread: per-step CPU time is then the step's cost, not spin-waiting
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tput = throughput(Path(tmp), a.steps, a.repeats)
        print(f"train_model {tput['pipeline_tokens_per_s_cpu']} tok/CPU-s vs bare Trainer "
              f"{tput['bare_tokens_per_s_cpu']} tok/CPU-s: ratio {tput['ratio']} "
              f"(wall: {tput['ratio_wall']})")
        pat = patches(Path(tmp), a.patch_steps)
        print(f"live ViT step {pat['live_step_s']} s vs cached patches {pat['cached_step_s']} s: "
              f"x{pat['speedup']}; ViT FLOP share (stage 2) scaled "
              f"{pat['flops_scaled']['vit_share_stage2']}, paper {pat['flops_paper']['vit_share_stage2']}")
    out = {"threads": torch.get_num_threads(), "load_before": round(load0, 2),
           "load_after": round(os.getloadavg()[0], 2), "seconds": round(time.perf_counter() - t0, 1),
           "throughput": tput, "patches": pat}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
