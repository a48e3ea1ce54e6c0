"""``python -m pipelines.cli ...`` = the ``tinyemo`` command."""

from pipelines.cli import app

app()
