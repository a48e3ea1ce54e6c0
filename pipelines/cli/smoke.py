"""``tinyemo run FLOW --profile P --smoke``: the profile on generated data and tiny same-family models."""

from __future__ import annotations

import contextlib

from pipelines.cli.options import fail
from tinyemo_core.config import RunConfig


def enter_smoke(stack: contextlib.ExitStack, cfg: RunConfig, flow: str,
                overrides: list[str]) -> tuple[RunConfig, list[str]]:
    raise fail("--smoke is not available yet")
