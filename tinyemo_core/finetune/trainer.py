"""The one fine-tuning loop of every recipe: the HF Trainer (accelerate underneath), resumable, observable.

``output_dir/checkpoints/checkpoint-<step>/`` hold weights + optimizer + scheduler + RNG state (Trainer's own
format); a run finds the newest *complete* one and resumes from it, so a ``kill -9`` loses at most
``save_steps`` steps and the resumed run ends with the same weights as an uninterrupted one (bit-identical on
CPU with the same thread count; tested). ``output_dir/model/`` is ``save_pretrained`` output (plain
transformers layout; LoRA merged into the base weights), and ``output_dir/train_result.json`` is written
LAST: it is the completion marker. Multi-GPU: run the same entry point under ``accelerate launch`` (DDP) or
set ``TrainArgs.deepspeed`` to a ZeRO json (docs/reasoning.md).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tinyemo_core.finetune.recipes import save_pretrained
from tinyemo_core.finetune.spec import TrainArgs
from tinyemo_core.monitor import peak_rss_mb
from tinyemo_core.store.atomic import read_json, staged_dir, write_json
from tinyemo_core.store.finetune import CHECKPOINTS, EPOCHS, LOSS_CURVE, MODEL, RESULT, epoch_models

_CKPT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")
LORA_SCOPE = ("language_model", "lm_head")  # LoRA goes on linear layers under these; lm_head excluded


def training_complete(output_dir: Path) -> bool:
    """True when the run finished: ``train_result.json`` exists (written after the model) and parses."""
    data = read_json(Path(output_dir) / RESULT)
    return bool(data) and (Path(output_dir) / MODEL / "config.json").exists()


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest checkpoint whose weights, optimizer, scheduler and trainer state are all on disk."""
    root = Path(output_dir) / CHECKPOINTS
    found = []
    for p in root.glob("checkpoint-*") if root.is_dir() else []:
        weights = any(p.glob("*.safetensors")) or any(p.glob("*.bin"))
        if p.name.split("-")[-1].isdigit() and weights and all((p / f).exists() for f in _CKPT_FILES):
            found.append((int(p.name.split("-")[-1]), p))
    return max(found)[1] if found else None


def resolve_precision(precision: str) -> str:
    """``auto`` -> ``bf16`` on a CUDA device that supports it, else ``fp32``; fp16/bf16 need CUDA."""
    cuda = torch.cuda.is_available()
    if precision == "auto":
        return "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
    if precision in ("bf16", "fp16") and not cuda:
        raise ValueError(f"precision {precision!r} needs a CUDA device; use 'auto' or 'fp32' on CPU")
    return precision


def memory_snapshot() -> dict[str, Any]:
    """GPU memory (torch allocator + NVML utilisation when nvidia-ml-py is present) or the CPU RSS in MiB."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        snap: dict[str, Any] = {
            "device": torch.cuda.get_device_name(),
            "gpu_allocated_mb": round(torch.cuda.memory_allocated() / 2**20, 1),
            "gpu_peak_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1),
        }
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
            snap["gpu_util"] = int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            snap["gpu_used_mb"] = round(pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20, 1)
        except Exception:  # noqa: BLE001 - NVML is optional monitoring, never a failure
            pass
        return snap
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        import resource

        return {"device": "cpu", "rss_mb": round(pages * resource.getpagesize() / 2**20, 1)}
    except (OSError, ValueError, IndexError):
        return {"device": "cpu", "rss_mb": peak_rss_mb()}


class _TokenCounter:
    """Wraps the collator to count the real (attention-mask) tokens the run has consumed."""

    def __init__(self, collator: Callable[[list[dict]], dict]) -> None:
        self.collator, self.tokens = collator, 0

    def __call__(self, items: list[dict]) -> dict:
        batch = self.collator(items)
        mask = batch.get("attention_mask")
        self.tokens += int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
        return batch


def _progress_callback(
    counter: _TokenCounter, history: list[dict], on_progress: Callable[[dict], None] | None
):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.t0, self.step0, self.tok0 = time.perf_counter(), state.global_step, counter.tokens

        def on_log(self, args, state, control, logs=None, **kw):
            if not logs or "loss" not in logs:
                return
            dt = max(time.perf_counter() - self.t0, 1e-9)
            done = state.global_step - self.step0
            rec = {
                "step": state.global_step,
                "max_steps": state.max_steps,
                "loss": float(logs["loss"]),
                "learning_rate": float(logs.get("learning_rate", 0.0)),
                "tokens_per_s": round((counter.tokens - self.tok0) / dt, 1),
                "eta_s": round(dt / max(done, 1) * (state.max_steps - state.global_step), 1),
                "memory": memory_snapshot(),
            }
            history.append(rec)
            if on_progress is not None:
                on_progress(rec)

    return Progress()


def _apply_lora(model, args: TrainArgs, trainable: Callable[[str], bool]):
    """Wrap ``model`` with PEFT LoRA on the in-scope linear layers ``trainable`` accepts; the out-of-scope
    modules it accepts (the connector) become ``modules_to_save`` (trained fully, checkpointed)."""
    from peft import LoraConfig, get_peft_model

    lora = args.lora
    names = [lora.target_modules] if isinstance(lora.target_modules, str) else list(lora.target_modules)
    targets, full = [], set()
    for mname, mod in model.named_modules():
        own = [n for n, _ in mod.named_parameters(recurse=False)]
        if not own or not any(trainable(f"{mname}.{n}") for n in own):
            continue
        in_scope = any(s in mname.split(".") for s in LORA_SCOPE)
        if not in_scope:
            full.add(mname)
        elif (
            isinstance(mod, torch.nn.Linear)
            and not mname.endswith("lm_head")
            and (names == ["all-linear"] or any(mname.endswith(s) for s in names))
        ):
            targets.append(mname)
    if not targets:
        raise ValueError(f"LoRA: no linear layer under {LORA_SCOPE} matches target_modules={names}")
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        modules_to_save=sorted(full) or None,
    )
    return get_peft_model(model, config)


def _load_4bit_check(args: TrainArgs) -> None:
    if args.lora is not None and args.lora.quantize_4bit:
        if not torch.cuda.is_available():
            raise ValueError("lora.quantize_4bit (QLoRA) needs CUDA and bitsandbytes; turn it off on CPU")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as exc:
            raise ValueError("lora.quantize_4bit needs bitsandbytes: pip install bitsandbytes") from exc


def training_arguments(args: TrainArgs, output_dir: Path):
    """The ``transformers.TrainingArguments`` our :class:`TrainArgs` mean (also used by the bench)."""
    from transformers import TrainingArguments

    precision = resolve_precision(args.precision)
    return TrainingArguments(
        output_dir=str(Path(output_dir) / CHECKPOINTS),
        learning_rate=args.learning_rate,
        num_train_epochs=args.num_train_epochs,
        max_steps=args.max_steps,
        warmup_steps=args.warmup_ratio,
        lr_scheduler_type=args.lr_scheduler_type,
        per_device_train_batch_size=args.per_device_train_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        weight_decay=args.weight_decay,
        save_strategy="steps",
        save_steps=args.save_steps,
        save_total_limit=args.save_total_limit,
        logging_steps=args.logging_steps,
        seed=args.seed,
        data_seed=args.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        activation_checkpointing=args.gradient_checkpointing,
        deepspeed=args.deepspeed,
        report_to="none",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


Save = Callable[[Any, Any, Path], None]  # (model, processor, folder): how a recipe writes its model
def _epoch_callback(output_dir: Path, processor: Any, save: Save):
    """Save model + processor at the end of each epoch (rank 0; kept when a resumed run passes it again),
    so every epoch can be judged, e.g. the LLaVA-on-EMOTIC poster's "best at the sixth epoch"."""
    from transformers import TrainerCallback

    class EpochModels(TrainerCallback):
        def on_epoch_end(self, args, state, control, model=None, **kw):
            epoch = int(round(state.epoch or 0))
            dest = Path(output_dir) / EPOCHS / f"epoch-{epoch}"
            if model is None or not state.is_world_process_zero or (dest / "config.json").is_file():
                return
            _save_final(model, processor, dest, save)

    return EpochModels()


def _trainer_class():
    """``Trainer`` whose resume loads model weights with ``from_pretrained`` (key conversions applied).

    transformers 5 saves LLaVA checkpoints in the legacy key layout (``language_model.model.*``) but the
    stock resume path loads them with a plain ``load_state_dict(strict=False)``, silently keeping the
    initial weights; loading through ``from_pretrained`` maps the keys back (strict copy, tested)."""
    from transformers import PreTrainedModel, Trainer

    class ResumingTrainer(Trainer):
        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            model = model if model is not None else self.model
            ckpt = Path(resume_from_checkpoint)
            if not isinstance(model, PreTrainedModel) or not any(ckpt.glob("model*.safetensors")):
                return super()._load_from_checkpoint(resume_from_checkpoint, model)
            dtype = next(model.parameters()).dtype
            loaded = type(model).from_pretrained(ckpt, dtype=dtype)
            model.load_state_dict(loaded.state_dict(), strict=True)
            del loaded

    return ResumingTrainer


def _save_final(model, processor, dest: Path, save: Save) -> None:
    """LoRA merged, then the recipe's ``save`` into a staged folder renamed into place."""
    from peft import PeftModel

    with staged_dir(dest) as tmp:
        final = model.merge_and_unload() if isinstance(model, PeftModel) else model
        save(final, processor, tmp)


def loss_curve_png(history: list[dict], dest: Path) -> Path | None:
    """Plot loss against step (the stage artifact); None when there is nothing to plot."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([h["step"] for h in history], [h["loss"] for h in history], marker=".")
    ax.set(xlabel="step", ylabel="training loss", title=dest.parent.name)
    fig.tight_layout()
    fig.savefig(dest, dpi=100)
    plt.close(fig)
    return dest


def train_model(
    model: Any,
    train_dataset: Any,
    data_collator: Callable[[list[dict]], dict[str, torch.Tensor]],
    args: TrainArgs,
    output_dir: Path,
    *,
    trainable: Callable[[str], bool],
    processor: Any | None = None,
    on_progress: Callable[[dict], None] | None = None,
    save: Save = save_pretrained,
) -> dict:
    """Train ``model`` with the HF Trainer; resume from the newest checkpoint; return ``train_result.json``.

    Every parameter ``trainable(name)`` rejects is frozen; ``save`` writes the final (and per-epoch) model
    (the recipe's ``Recipe.save``). A finished run's result is returned at once.
    """
    from transformers.trainer_callback import PrinterCallback
    from transformers.utils import logging as hf_logging

    output_dir = Path(output_dir)
    if training_complete(output_dir):
        return read_json(output_dir / RESULT)
    _load_4bit_check(args)
    if args.save_epoch_models and args.lora is not None:
        raise ValueError("train.save_epoch_models saves full models; with lora: it is not supported (merging "
                         "LoRA weights mid-training would end the adapter training)")
    for name, p in model.named_parameters():
        p.requires_grad_(bool(trainable(name)))
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if n_train == 0:
        raise ValueError("no parameter is trainable: the recipe's trainable() accepted no parameter name")
    if args.lora is not None:
        model = _apply_lora(model, args, trainable)
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if args.gradient_checkpointing and hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()  # frozen embeddings + checkpointing still backpropagate
    counter, history = _TokenCounter(data_collator), []
    trainer = _trainer_class()(
        model=model,
        args=training_arguments(args, output_dir),
        train_dataset=train_dataset,
        data_collator=counter,
        callbacks=[_progress_callback(counter, history, on_progress)]
        + ([_epoch_callback(output_dir, processor, save)] if args.save_epoch_models else []),
    )
    trainer.remove_callback(PrinterCallback)  # progress goes through on_progress, not stdout
    hf_logging.disable_progress_bar()
    resume = latest_checkpoint(output_dir)
    start, threads = time.perf_counter(), torch.get_num_threads()
    if args.cpu_threads is not None:
        torch.set_num_threads(args.cpu_threads)
    try:
        out = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - start
    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():  # under `accelerate launch` (DDP) only rank 0 writes the outputs
        return {"steps": int(trainer.state.global_step), "rank": trainer.args.process_index}
    _save_final(trainer.model, processor, output_dir / MODEL, save)
    logged = [{"step": h["step"], "loss": h["loss"]} for h in trainer.state.log_history if "loss" in h]
    loss_curve_png(logged, output_dir / LOSS_CURVE)
    result = {
        "steps": int(trainer.state.global_step),
        "max_steps": int(trainer.state.max_steps),
        "resumed_from_step": int(resume.name.split("-")[-1]) if resume else 0,
        "losses": logged,
        "final_loss": logged[-1]["loss"] if logged else None,
        "train_loss": float(out.training_loss) if not math.isnan(out.training_loss) else None,
        "tokens": counter.tokens,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(counter.tokens / max(seconds, 1e-9), 1),
        "trainable_parameters": int(n_train),
        "total_parameters": int(sum(p.numel() for p in trainer.model.parameters())),
        "precision": resolve_precision(args.precision),
        "lora": args.lora is not None,
        "memory": memory_snapshot(),
        "progress": history[-1] if history else None,
        "epoch_models": [str(p) for p in epoch_models(output_dir)],
        "args": json.loads(args.model_dump_json()),
    }
    write_json(output_dir / RESULT, result)
    return result
