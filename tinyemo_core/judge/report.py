"""Generated-answer evaluation report: report.md, report.json, answers.parquet, confusion PNGs, table rows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tinyemo_core.evaluate.plots import plot_confusion
from tinyemo_core.judge.metrics import NONE_COLUMN
from tinyemo_core.store.atomic import write_atomic, write_json, write_parquet
from tinyemo_core.store.evaluations import REPORT, REPORT_MD


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def _f4(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def table_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per dataset for a table artifact (percentages rounded to 2 decimals)."""
    rows = []
    for name, d in summary["datasets"].items():
        row = {"dataset": name, "role": d["role"], "n": d["n"]}
        for k in ("accuracy", "accuracy_first_mention", "mAP_generated", "mAP_likelihood"):
            if d.get(k) is not None:
                row[k] = round(100 * d[k], 2)
        for k in ("n_none", "n_several", "n_failed", "vad_mae", "clip_score", "ref_clip_score"):
            if d.get(k) is not None:
                row[k] = round(d[k] * (100 if "clip" in k else 1), 2) if isinstance(d[k], float) else d[k]
        rows.append(row)
    return rows


def markdown(summary: dict[str, Any], title: str) -> str:
    """Accuracy table (held-in first), group means, sensitivity, CLIPScore and EMOTIC sections."""
    lines = [
        f"# {title}",
        "",
        f"Model: `{summary['model']}` (fingerprint `{summary['model_fingerprint']}`), "
        f"recipe `{summary['recipe']}`, split `{summary['split']}`.",
        "",
    ]
    ds = sorted(summary["datasets"].items(), key=lambda kv: (kv[1]["role"] != "held_in", kv[0]))
    single = [(n, d) for n, d in ds if d.get("accuracy") is not None]
    if single:
        rule = "wrong" if summary["several"] == "wrong" else "as their first-mentioned label"
        lines += [
            f"Answers naming several labels count {rule}; answers naming no label and failed requests "
            "count wrong.",
            "",
            "| dataset | role | #test | accuracy (%) | first-mention (%) | no label | several | failed |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {n} | {d['role'].replace('_', '-')} | {d['n']} | {_pct(d['accuracy'])} | "
            f"{_pct(d['accuracy_first_mention'])} | {d['n_none']} | {d['n_several']} | {d['n_failed']} |"
            for n, d in single
        ]
        m = summary["means"]
        lines += [
            f"| **Held-in mean** | | | {_pct(m['held_in_mean'])} | | | | |",
            f"| **Held-out mean** | | | {_pct(m['held_out_mean'])} | | | | |",
            f"| **Mean over all** | | | {_pct(m['total'])} | | | | |",
            "",
        ]
    if sens := summary.get("sensitivity"):
        lines += [
            "## Instruction sensitivity (EmoVIT §4.3.2; lower is better)",
            "",
            f"std/mean of accuracy across {len(summary['instructions'])} instructions, "
            f"{sens['std']} standard deviation (sample std in the last column).",
            "",
            "| dataset | mean acc. (%) | std (%) | sensitivity | sensitivity (sample std) |",
            "|---|---:|---:|---:|---:|",
        ]
        std_key = "std_population" if sens["std"] == "population" else "std_sample"
        lines += [
            f"| {n} | {_pct(v['mean'])} | {_pct(v[std_key])} | {_f4(v['sensitivity'])} | "
            f"{_f4(v['sensitivity_sample'])} |"
            for n, v in sens["per_dataset"].items()
        ]
        lines += [f"| **mean** | | | {_f4(sens['sensitivity'])} | {_f4(sens['sensitivity_sample'])} |", ""]
    if clip := summary.get("clipscore"):
        lines += [
            "## CLIPScore / RefCLIPScore (Hessel et al. 2021; x100 as in TinyEmo Table VI)",
            "",
            f"CLIP model: {clip['clip_model']}; w = {clip['w']}; candidates and references prefixed "
            f'"{clip["prefix"].strip()}"; texts truncated to {clip["truncation_tokens"]} tokens; image '
            f'features: {clip["image_features"]}; prompt: "{clip["prompt"]}".',
            "",
            "| dataset | n | CLIP-S | RefCLIP-S |",
            "|---|---:|---:|---:|",
        ]
        for n, d in clip["datasets"].items():
            ref = "–" if d.get("ref_clip_score") is None else f"{100 * d['ref_clip_score']:.2f}"
            lines.append(f"| {n} | {d['n']} | {100 * d['clip_score']:.2f} | {ref} |")
        lines.append("")
    multi = [(n, d) for n, d in ds if d.get("mAP_generated") is not None]
    if multi:
        lines += [
            "## EMOTIC: mAP over categories, V/A/D bin error",
            "",
            "`generated` = 0/1 scores from the generated category list; `likelihood` = teacher-forced "
            "log-likelihood of each category name in the answer slot (graded scores).",
            "",
            "| dataset | n | mAP generated (%) | mAP likelihood (%) | V/A/D MAE (bins) |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {n} | {d['n']} | {_pct(d['mAP_generated'])} | {_pct(d.get('mAP_likelihood'))} | "
            f"{_num(d.get('vad_mae'))} |"
            for n, d in multi
        ]
        lines.append("")
    return "\n".join(lines)


def answers_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Every scored answer: dataset, instruction, sample id, truth, text, parse status, prediction."""
    schema = pa.schema(
        [
            ("dataset", pa.string()),
            ("instruction", pa.string()),
            ("sample_id", pa.string()),
            ("true", pa.list_(pa.string())),
            ("answer", pa.string()),
            ("status", pa.string()),
            ("predicted", pa.list_(pa.string())),
            ("correct", pa.bool_()),
        ]
    )
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return pa.table(cols, schema=schema)


def write_report(
    summary: dict[str, Any],
    confusions: dict[str, tuple[list[str], np.ndarray]],
    answer_rows: list[dict[str, Any]],
    out_dir: Path,
    *,
    title: str,
) -> dict[str, Path]:
    """Write every file into ``out_dir``; returns the paths by key."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md = markdown(summary, title)
    paths = {
        "report_md": write_atomic(out_dir / REPORT_MD, lambda p: p.write_text(md)),
        "answers": write_parquet(out_dir / "answers.parquet", answers_table(answer_rows)),
    }
    for name, (cands, conf) in confusions.items():
        square = np.vstack([conf, np.zeros((1, conf.shape[1]), dtype=conf.dtype)])  # no true "(no label)"
        acc = summary["datasets"][name]["accuracy"]
        paths[f"confusion:{name}"] = plot_confusion(
            square,
            [*cands, NONE_COLUMN],
            out_dir / f"confusion_{_slug(name)}.png",
            f"{name}: accuracy {_pct(acc)}%",
        )
    paths["report_json"] = write_json(
        out_dir / REPORT, {"title": title, "summary": summary, "table_rows": table_rows(summary)}
    )
    return paths
