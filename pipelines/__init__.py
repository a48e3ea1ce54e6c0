"""Prefect orchestration for tinyemo: thin flows and tasks around ``tinyemo_core`` stages."""

from pipelines.runtime.env import configure_environment

configure_environment()
