"""Vectors in Parquet: fixed-size-list columns (float16 or float32) next to ``image_id``.

Reading goes through the column's value buffer with numpy (zero-copy on memory-mapped files), because
pyarrow's
own half-float conversion is ~8x slower (measured: docs/stores.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

_NP = {"float16": np.float16, "float32": np.float32}
_PA = {"float16": pa.float16(), "float32": pa.float32()}


def vector_array(vectors: np.ndarray, dtype: str = "float16") -> pa.FixedSizeListArray:
    """Wrap an (N, D) array as a fixed-size-list Arrow array of ``dtype``."""
    if vectors.ndim != 2:
        raise ValueError(f"expected a 2-D array of vectors, got shape {vectors.shape}")
    flat = np.ascontiguousarray(vectors, dtype=_NP[dtype]).reshape(-1)
    values = (
        pa.array(flat, type=_PA[dtype])
        if dtype == "float32"
        else pa.Array.from_buffers(pa.float16(), flat.size, [None, pa.py_buffer(flat)])
    )
    return pa.FixedSizeListArray.from_arrays(values, vectors.shape[1])


def column_to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """(N, D) numpy view of a fixed-size-list column, without pyarrow's slow half-float path."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = []
    for chunk in chunks:
        if chunk.null_count:
            raise ValueError("vector column has nulls; filter failed rows first")
        dim = chunk.type.list_size
        values = chunk.values
        np_type = np.float16 if pa.types.is_float16(values.type) else np.dtype(values.type.to_pandas_dtype())
        buf = values.buffers()[1]
        arr = np.frombuffer(buf, dtype=np_type, count=len(values) + values.offset)[values.offset :]
        parts.append(arr.reshape(-1, dim)[chunk.offset : chunk.offset + len(chunk)])
    if not parts:
        return np.zeros((0, 0), dtype=np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def read_vectors(
    path: Path, id_column: str = "image_id", vector_column: str = "vector"
) -> tuple[list, np.ndarray]:
    """Read ids and an (N, D) array from one Parquet file, memory-mapped; rows with null vectors skipped."""
    table = pq.read_table(path, columns=[id_column, vector_column], memory_map=True)
    table = table.filter(pc.is_valid(table[vector_column]))
    return table[id_column].to_pylist(), column_to_numpy(table[vector_column])
