"""Vector columns in Arrow tables and the two shard file formats, read into numpy without pyarrow's slow
half-float conversion (docs/stores.md).

- v2 (``.arrow``): an uncompressed Arrow IPC file, ``vector`` a fixed-size-list<halffloat|float> column;
  memory-mapped, its value buffer is a numpy view (zero copy), reading costs one ``memcpy``.
- v1 (``.parquet``): the same columns in Parquet; its nested-list decoding reads ~30x slower than v2.
- label tables stay Parquet with ``vector`` as fixed_size_binary(dim * itemsize) (no nesting levels to
  decode), ``dtype``/``dim`` in the schema metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

_NP = {"float16": np.float16, "float32": np.float32}
_PA = {"float16": pa.float16(), "float32": pa.float32()}
META_KEY = b"tinyemo.vectors"


def vector_array(vectors: np.ndarray, dtype: str = "float16", mask: np.ndarray | None = None
                 ) -> pa.FixedSizeListArray:
    """Wrap an (N, D) array as a fixed-size-list Arrow array of ``dtype`` (``mask``: True = null row)."""
    if vectors.ndim != 2:
        raise ValueError(f"expected a 2-D array of vectors, got shape {vectors.shape}")
    flat = np.ascontiguousarray(vectors, dtype=_NP[dtype]).reshape(-1)
    values = pa.Array.from_buffers(_PA[dtype], flat.size, [None, pa.py_buffer(flat)])
    return pa.FixedSizeListArray.from_arrays(values, vectors.shape[1],
                                             mask=None if mask is None else pa.array(mask))


def binary_vector_array(vectors: np.ndarray, dtype: str = "float32") -> pa.FixedSizeBinaryArray:
    """(N, D) as fixed_size_binary(D * itemsize): one opaque value per row (fast in Parquet)."""
    arr = np.ascontiguousarray(vectors, dtype=_NP[dtype])
    width = arr.shape[1] * arr.itemsize
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(arr), [None, pa.py_buffer(arr)])


def vector_metadata(dtype: str, dim: int, **extra: object) -> dict[bytes, bytes]:
    """Schema metadata saying how to read the ``vector`` column."""
    return {META_KEY: json.dumps({"dtype": dtype, "dim": int(dim), **extra}).encode()}


def _np_type(values: pa.Array) -> np.dtype:
    if pa.types.is_float16(values.type):
        return np.dtype(np.float16)
    return np.dtype(values.type.to_pandas_dtype())


def column_to_numpy(column: pa.ChunkedArray | pa.Array, metadata: dict | None = None) -> np.ndarray:
    """(N, D) numpy view of a fixed-size-list column, or of a fixed_size_binary column (dtype from
    ``metadata``, see :func:`vector_metadata`); null rows are kept (their values are zeros)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    info = json.loads((metadata or {}).get(META_KEY, b"{}"))
    parts = []
    for chunk in chunks:
        if pa.types.is_fixed_size_binary(chunk.type):
            np_type = np.dtype(_NP[info.get("dtype", "float32")])
            dim = chunk.type.byte_width // np_type.itemsize
            buf = chunk.buffers()[1]
            arr = np.frombuffer(buf, dtype=np_type, count=(len(chunk) + chunk.offset) * dim)
            parts.append(arr.reshape(-1, dim)[chunk.offset:])
            continue
        dim = chunk.type.list_size
        values = chunk.values
        arr = np.frombuffer(values.buffers()[1], dtype=_np_type(values), count=len(values) + values.offset)
        parts.append(arr[values.offset:].reshape(-1, dim)[chunk.offset: chunk.offset + len(chunk)])
    if not parts:
        return np.zeros((0, 0), dtype=np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _valid(column: pa.ChunkedArray) -> np.ndarray | None:
    """Bool per row (True = has a vector), or None when no row is null."""
    if column.null_count == 0:
        return None
    return np.concatenate([c.is_valid().to_numpy(zero_copy_only=False) for c in column.chunks])


@dataclass
class ShardData:
    """One shard opened for reading: ids, a (N, D) view of every row's vector, which rows are valid."""

    id_array: pa.ChunkedArray
    vectors: np.ndarray  # read-only view into the memory-mapped file (zero rows for failures)
    valid: np.ndarray | None  # None = all rows valid
    errors: list[str | None] | None = None

    @property
    def ids(self) -> list[str]:
        return self.id_array.to_pylist()

    def __len__(self) -> int:
        return len(self.id_array)


def shard_format(path: Path) -> int:
    """2 for Arrow IPC shards (``.arrow``), 1 for Parquet shards (``.parquet``)."""
    suffix = Path(path).suffix
    if suffix == ".arrow":
        return 2
    if suffix == ".parquet":
        return 1
    raise ValueError(f"{path}: not a feature shard (expected .arrow or .parquet)")


def read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A shard as an Arrow table, memory-mapped (either format)."""
    if shard_format(path) == 2:
        table = ipc.open_file(pa.memory_map(str(path))).read_all()
        return table.select(columns) if columns else table
    return pq.read_table(path, columns=columns, memory_map=True)


def read_shard(path: Path, *, errors: bool = False) -> ShardData:
    """Open one shard of either format; the vectors are a zero-copy view where the format allows."""
    cols = ["image_id", "vector", "error"] if errors else ["image_id", "vector"]
    table = read_table(path, cols)
    column = table["vector"]
    vectors = column_to_numpy(column, table.schema.metadata)
    errs = table["error"].to_pylist() if errors else None
    return ShardData(table["image_id"], vectors, _valid(column), errs)


def shard_schema(path: Path) -> pa.Schema:
    """The schema of a shard without reading its data."""
    if shard_format(path) == 2:
        return ipc.open_file(pa.memory_map(str(path))).schema
    return pq.read_schema(path)
