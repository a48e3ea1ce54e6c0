"""Pipeline stages as plain functions: each reads and writes the stores and returns a small descriptor dict.

Prefect tasks in ``pipelines/`` are thin wrappers around these; a notebook can call them directly.
"""
