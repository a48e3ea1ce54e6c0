"""Bunny's square padding (image_aspect_ratio: pad) and the OpenAI backend's pad_to_square option."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinyemo_core.generate.backends import ChatRequest, Turn
from tinyemo_core.generate.backends.openai_http import OpenAIHTTPGenerator, to_openai_messages
from tinyemo_core.generate.bunny.image import expand_to_square, mean_fill
from tinyemo_core.generate.spec import GenerationSpec

FILL = (127, 127, 127)


def _rand(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize(("w", "h"), [(37, 20), (20, 37), (8, 3)])
def test_expand_to_square_pixels(w: int, h: int) -> None:
    img = _rand(w, h)
    out = np.asarray(expand_to_square(img, FILL))
    side = max(w, h)
    assert out.shape == (side, side, 3)
    x0, y0 = (side - w) // 2, (side - h) // 2
    assert np.array_equal(out[y0:y0 + h, x0:x0 + w], np.asarray(img))  # original pixels untouched
    border = np.ones((side, side), bool)
    border[y0:y0 + h, x0:x0 + w] = False
    assert border.sum() == side * side - w * h and (out[border] == FILL).all()


def test_square_images_and_mean_colour() -> None:
    img = _rand(16, 16)
    assert expand_to_square(img, FILL) is img
    assert mean_fill([0.5, 0.5, 0.5]) == FILL  # SigLIP's mean; Bunny: int(m * 255)
    assert mean_fill([0.48145466, 0.4578275, 0.40821073]) == (122, 116, 104)  # CLIP's mean, as in LLaVA


def _decode(messages: list[dict]) -> Image.Image:
    url = messages[0]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def test_openai_messages_send_padded_lossless_png(tmp_path: Path) -> None:
    img = _rand(30, 12, seed=4)
    img.save(tmp_path / "a.png")
    req = ChatRequest(turns=(Turn(role="user", text="hi"),), image_path=str(tmp_path / "a.png"))
    sent = _decode(to_openai_messages(req, FILL))
    assert np.array_equal(np.asarray(sent), np.asarray(expand_to_square(img, FILL)))
    assert _decode(to_openai_messages(req)).size == (30, 12)  # off by default: the file as is


class _Models(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server API
        body = json.dumps({"data": [{"id": "bunny", "root": "/models/bunny-llava"}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_pad_option_from_spec_changes_only_its_own_fingerprint() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"

    async def fp(**kw: object) -> tuple[str, object]:
        gen = OpenAIHTTPGenerator.from_spec(GenerationSpec(base_url=url, model="bunny", **kw))
        await gen.health()
        await gen.aclose()
        return gen.fingerprint, gen.pad_fill

    try:
        plain, padded, other = (asyncio.run(fp(**kw)) for kw in (
            {}, {"pad_to_square": True}, {"pad_to_square": True, "pad_color": [0, 0, 0]}))
    finally:
        server.shutdown()
    assert plain[1] is None and padded[1] == FILL and other[1] == (0, 0, 0)
    assert len({plain[0], padded[0], other[0]}) == 3
    # off adds no key: the identity is exactly the served model's (tinyemo_core.identity.served_identity)
    from tinyemo_core.identity import hash_json, served_identity

    ident = served_identity(url, "bunny", None, {"root": "/models/bunny-llava"})
    assert "pad_to_square" not in ident and plain[0] == hash_json(ident)[:16]
