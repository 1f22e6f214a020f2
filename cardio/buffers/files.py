"""Buffer files: a buffer's ``state_dict`` as one ``.npz`` archive that loads without unpickling anything.

The archive holds every array of the state as ``a0``, ``a1``, ... and one ``__meta__`` entry: the state's
structure as JSON (``{"format": "cardio-buffer-v1", "state": ...}``), arrays named by reference, dicts and tuples
tagged so they come back as they were. Written atomically (a temporary file, then a rename).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from cardio.checkpoint import atomic_write
from cardio.errors import BufferError

FORMAT = "cardio-buffer-v1"


def save_state(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` to ``path`` (see the module docstring); returns the path."""
    arrays: dict[str, np.ndarray] = {}

    def encode(x: Any) -> Any:  # JSON skeleton; arrays go to the archive as "a<i>"
        if isinstance(x, np.ndarray):
            arrays[f"a{len(arrays)}"] = x
            return {"__array__": f"a{len(arrays) - 1}"}
        if isinstance(x, dict):
            return {"__dict__": [[k, encode(v)] for k, v in x.items()]}
        if isinstance(x, tuple):
            return {"__tuple__": [encode(v) for v in x]}
        if isinstance(x, list):
            return [encode(v) for v in x]
        if isinstance(x, np.generic):
            return x.item()
        return x

    meta = json.dumps({"format": FORMAT, "state": encode(state)})
    return atomic_write(path, lambda f: np.savez(f, __meta__=np.array(meta), **arrays))  # type: ignore[arg-type]


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The state :func:`save_state` wrote.

    Raises:
        BufferError: no such file, or a corrupt or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise BufferError(f"no buffer file at {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["__meta__"]))
            if meta.get("format") != FORMAT:
                raise BufferError(f"{path} is not a cardio buffer file (format {meta.get('format')!r})")
            arrays = {k: archive[k] for k in archive.files if k != "__meta__"}

        def decode(x: Any) -> Any:
            if isinstance(x, dict) and "__array__" in x:
                return arrays[x["__array__"]]
            if isinstance(x, dict) and "__dict__" in x:
                return {k: decode(v) for k, v in x["__dict__"]}
            if isinstance(x, dict) and "__tuple__" in x:
                return tuple(decode(v) for v in x["__tuple__"])
            if isinstance(x, list):
                return [decode(v) for v in x]
            return x

        state: dict[str, Any] = decode(meta["state"])
    except BufferError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise BufferError(f"buffer file {path} is corrupt or not a cardio buffer: {exc}") from exc
    return state
