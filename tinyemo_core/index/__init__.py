"""FAISS indexes over label tables and image features."""

from tinyemo_core.index.faiss_index import build_index, load_index, save_index, search

__all__ = ["build_index", "load_index", "save_index", "search"]
