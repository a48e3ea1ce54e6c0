"""Bunny (BAAI, the TinyEmo §III-A generator) as a transformers/vLLM LLaVA model: conversion, a reference
forward pass from Bunny's published architecture, Bunny's square padding and a tiny offline checkpoint."""

from .convert import BunnyConversionError, convert_bunny, load_converted
from .image import BUNNY_CHAT_TEMPLATE, BUNNY_SYSTEM, bunny_prompt, expand_to_square

__all__ = [
    "BUNNY_CHAT_TEMPLATE",
    "BUNNY_SYSTEM",
    "BunnyConversionError",
    "bunny_prompt",
    "convert_bunny",
    "expand_to_square",
    "load_converted",
]
