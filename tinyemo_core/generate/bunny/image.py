"""Bunny's input format: square padding with the mean colour and the ``bunny`` conversation template.

Facts (BAAI-DCAI/Bunny): with ``image_aspect_ratio: pad`` an image is pasted centred onto a square canvas
of its longer side filled with ``int(c * 255)`` for each channel of the image processor's ``image_mean``
(offset ``(long - short) // 2``), then resized by the SigLIP processor. The ``bunny`` conversation is
``SYSTEM + " " + "USER: " + msg + " " + "ASSISTANT: " + reply + "<|endoftext|>" ...`` ending in
``"ASSISTANT:"``; the image is ``"<image>\\n"`` before the first user message.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

BUNNY_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions."
)
BUNNY_EOS = "<|endoftext|>"

#: Jinja chat template reproducing Bunny's prompt. Accepts string content (vLLM's "string" content format
#: has already put "<image>\n" in front of the text) and OpenAI-style part lists (image part -> "<image>\n").
#: A system message replaces Bunny's default system text.
BUNNY_CHAT_TEMPLATE = (
    "{%- set ns = namespace(system='" + BUNNY_SYSTEM.replace("'", "\\'") + "') -%}"
    "{%- for m in messages if m['role'] == 'system' -%}"
    "{%- if m['content'] is string -%}{%- set ns.system = m['content'] -%}"
    "{%- else -%}{%- set ns.system = m['content'] | selectattr('type', 'equalto', 'text') "
    "| map(attribute='text') | join('') -%}{%- endif -%}"
    "{%- endfor -%}"
    "{{- ns.system + ' ' -}}"
    "{%- for m in messages if m['role'] != 'system' -%}"
    "{%- if m['content'] is string -%}{%- set text = m['content'] -%}"
    "{%- else -%}{%- set ns.text = '' -%}"
    "{%- for c in m['content'] -%}"
    "{%- if c['type'] in ['image', 'image_url'] -%}{%- set ns.text = ns.text + '<image>\\n' -%}"
    "{%- elif c['type'] == 'text' -%}{%- set ns.text = ns.text + c['text'] -%}{%- endif -%}"
    "{%- endfor -%}{%- set text = ns.text -%}{%- endif -%}"
    "{%- if m['role'] == 'user' -%}{{- 'USER: ' + text + ' ' -}}"
    "{%- else -%}{{- 'ASSISTANT: ' + text + '" + BUNNY_EOS + "' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}"
)


def mean_fill(image_mean: Sequence[float]) -> tuple[int, ...]:
    """Bunny's padding colour: ``int(m * 255)`` per channel (SigLIP's mean 0.5 -> 127)."""
    return tuple(int(m * 255) for m in image_mean)


def expand_to_square(image: Image.Image, fill: Sequence[int]) -> Image.Image:
    """Centre ``image`` on a square canvas of its longer side filled with ``fill`` (square: unchanged)."""
    w, h = image.size
    if w == h:
        return image
    side = max(w, h)
    canvas = Image.new(image.mode, (side, side), tuple(fill))
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    return canvas


def bunny_prompt(turns: Sequence[tuple[str, str]], *, has_image: bool, system: str | None = None) -> str:
    """Bunny's ``bunny`` conversation as text (``turns`` = (role, text), roles user/assistant), ending in
    ``ASSISTANT:``; ``<image>\\n`` is put before the first user message when ``has_image``."""
    out = (system if system is not None else BUNNY_SYSTEM) + " "
    image_left = has_image
    for role, text in turns:
        if role == "user":
            if image_left:
                text, image_left = "<image>\n" + text, False
            out += f"USER: {text} "
        elif role == "assistant":
            out += f"ASSISTANT: {text}{BUNNY_EOS}"
        else:
            raise ValueError(f"turn role must be 'user' or 'assistant', got {role!r}")
    return out + "ASSISTANT:"


def square_png_data_url(path: str, fill: Sequence[int]) -> str:
    """The image at ``path`` as RGB, padded by :func:`expand_to_square`, as a lossless PNG ``data:`` URL
    (what the OpenAI backend sends when ``generation.pad_to_square`` is on)."""
    import base64
    import io

    with Image.open(path) as im:
        square = expand_to_square(im.convert("RGB"), fill)
    buf = io.BytesIO()
    square.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
