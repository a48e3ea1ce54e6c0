"""Generator commands: ``tinyemo serve-generator`` (a local OpenAI-compatible VLM server) and
``tinyemo convert-bunny`` (the paper's generator, Bunny, as a LLaVA folder that transformers and vLLM
load)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.options import console, fail
from tinyemo_core.generate.bunny import BunnyConversionError
from tinyemo_core.generate.bunny import convert_bunny as convert
from tinyemo_core.generate.tiny_model import build_tiny_vlm


def serve_generator(
    model: Annotated[str | None, typer.Option("--model", "-m", help="local transformers VLM folder")] = None,
    tiny: Annotated[bool, typer.Option("--tiny", help="build (once) and serve a tiny random VLM")] = False,
    host: Annotated[str, typer.Option(help="bind address (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    served_name: Annotated[str | None, typer.Option(help="model id clients send")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    trust_remote_code: Annotated[bool, typer.Option(help="allow custom model code (Bunny)")] = False,
) -> None:
    """Serve a local transformers vision-language model over an OpenAI-compatible API (for CPU/small runs)."""
    from tinyemo_core.generate.server import serve_generator as serve

    if tiny:
        model = str(build_tiny_vlm(Path("storage/models/tiny-vlm")))
    if not model:
        console.print("[red]pass --model PATH (a transformers VLM folder) or --tiny[/red]")
        raise typer.Exit(2)
    console.print(f"serving {model} at http://{host}:{port}/v1 (OpenAI-compatible)")
    serve(model, host, port, served_name=served_name, device=device, trust_remote_code=trust_remote_code)


def convert_bunny(
    src: Annotated[
        str, typer.Argument(help="a Bunny-Phi checkpoint folder or hub id (e.g. BAAI/Bunny-v1_0-3B)")
    ],
    dst: Annotated[Path, typer.Argument(help="the LLaVA-layout folder to write")],
    vision_tower: Annotated[
        str | None, typer.Option(help="SigLIP folder or hub id overriding the checkpoint's mm_vision_tower")
    ] = None,
    dtype: Annotated[str | None, typer.Option(help="cast weights: bfloat16 | float16 | float32")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace a DST that holds something else")] = False,
) -> None:
    """Convert Bunny (SigLIP + mlp2x_gelu + Phi) to transformers' LLaVA layout for `vllm serve` (no code from
    the checkpoint is executed; every tensor is accounted for)."""
    try:
        desc = convert(
            src,
            dst,
            vision_tower=vision_tower,
            dtype=dtype,
            overwrite=overwrite,
            on_progress=lambda p: console.print(
                f"  {p.get('stage')}: { {k: v for k, v in p.items() if k != 'stage'} }"
            ),
        )
    except (BunnyConversionError, FileNotFoundError) as exc:
        raise fail(exc) from None
    console.print(f"[green]converted[/green] {src} -> {dst} (fingerprint {desc.get('fingerprint')})")
    console.print(
        f"serve it: vllm serve {dst} --chat-template {Path(dst) / 'chat_template.jinja'} "
        "--max-model-len 2048 (docs/generation.md)"
    )


def register(app: typer.Typer) -> None:
    app.command("serve-generator")(serve_generator)
    app.command("convert-bunny")(convert_bunny)
