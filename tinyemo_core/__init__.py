"""tinyemo_core: the plain library behind the TinyEmo pipeline (no Prefect imports here)."""

__version__ = "0.1.0"
