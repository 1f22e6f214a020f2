"""Rows as opaque items: how the buffer copies whole rows of its ``[T*N, *s]`` arrays in one block each.

Gathering a batch or scattering a block row by row through numpy's element-wise fancy indexing is slow for rows
of many elements (84x84x4 frames); viewing each row as one opaque ``np.void`` item of its byte size makes
``take`` and a scatter copy it with one memcpy (about 3x faster for frames, 4-10x for block writes,
``bench/buffer.py``). float64 fields are stored as float32.
"""

from __future__ import annotations

import numpy as np

VOID_ROW_BYTES = 64  # rows at least this large are gathered as opaque items (see rows_view)


def storage_dtype(dtype: np.dtype) -> np.dtype:
    # float64 observations / rewards are halved to float32: networks train in float32 and memory is the limit.
    return np.dtype(np.float32) if dtype == np.float64 else dtype


def rows_view(flat: np.ndarray) -> np.ndarray:
    """``[C, *s]`` -> a ``[C]`` view of opaque items when rows are large: ``np.take`` then copies whole rows
    with one memcpy each, about 3x faster than its per-element path for 84x84x4 frames."""
    row_bytes = flat.itemsize * int(np.prod(flat.shape[1:], dtype=np.int64))
    if flat.ndim < 2 or row_bytes < VOID_ROW_BYTES:
        return flat
    return flat.reshape(flat.shape[0], -1).view(np.dtype((np.void, row_bytes))).reshape(-1)


def row_items(rows: np.ndarray) -> np.ndarray:
    """``[C, *s]`` (C-contiguous) -> a ``[C]`` view of opaque items, one per row, whatever its size, so that a
    gather or scatter of whole rows copies each as one block."""
    if rows.ndim == 1:
        return rows
    flat = rows.reshape(rows.shape[0], -1)
    return flat.view(np.dtype((np.void, flat.shape[1] * flat.itemsize))).reshape(-1)


def take_rows(src: np.ndarray, index: np.ndarray, dst: np.ndarray) -> None:
    """``dst[:] = src[index]`` without a temporary; ``index`` is known valid (mode="clip" skips numpy's
    out-buffering for mode="raise")."""
    if src.dtype.kind == "V":
        dst = dst.reshape(len(index), -1).view(src.dtype).reshape(-1)
    src.take(index, axis=0, out=dst, mode="clip")
