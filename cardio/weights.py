"""Weights-only agent files: an agent's ``state_dict`` as plain arrays in an ``.npz``, loadable without pickle.

A full resume checkpoint (``last.ckpt``) is a pickle: loading one runs whatever code its author put in it, so it
is for your own files only (docs/checkpoints.md). ``weights.npz`` holds the same agent state as numbers and
strings only and is read with ``np.load(allow_pickle=False)``, so a file from someone else can be evaluated
safely. The runner writes it beside ``last.ckpt`` on every checkpoint; ``scripts/evaluate.py`` loads it.

Layout: one array per leaf of ``agent.state_dict()``, keyed by its path (``q_net/0.weight``,
``optimizer/param_groups/0/lr``). Torch tensors become numpy arrays; Python numbers and strings become 0-d arrays
(integers too large for int64, such as a PCG64 generator's state, are written as decimal strings); ``None`` leaves
are not written. Loading walks the state_dict of a freshly built agent of the same config: every leaf there must
be in the file with the same shape and dtype, so a file for other network sizes or another env is refused with
the key named. Entries the fresh structure has no place for (an optimiser's moments: a fresh optimiser has none
yet) are skipped: evaluation needs the weights, training resumes from ``last.ckpt``.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cardio.checkpoint import atomic_write

WEIGHTS_NAME = "weights.npz"
"""File name the runner writes beside ``last.ckpt`` whenever it checkpoints."""

SEP = "/"
"""Separates the parts of a leaf's path; a key that contains it is refused (it could not be read back)."""


class WeightsError(ValueError):
    """A weights file that cannot be read, or does not fit the agent loading it; the message names the key."""


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _leaf_array(value: Any, path: str) -> np.ndarray | None:
    """The array stored for one leaf (``None``: nothing stored)."""
    if value is None:
        return None
    if _is_tensor(value):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray | np.generic):
        if value.dtype == object:
            raise WeightsError(f"state entry {path!r} is an object array; only numbers and strings are saved")
        return np.asarray(value)
    if isinstance(value, bool | float | str):
        return np.asarray(value)
    if isinstance(value, int):
        if -(2**63) <= value < 2**63:
            return np.asarray(value, dtype=np.int64)
        return np.asarray(str(value))  # e.g. a 128-bit PCG64 state
    if hasattr(value, "__array__"):  # a JAX array
        return np.asarray(value)
    raise WeightsError(f"state entry {path!r} is a {type(value).__name__}; only arrays, numbers and strings are saved")


def flatten(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """``{path: array}`` for every leaf of a nested dict/list/tuple state (see the module docstring).

    Args:
        tree: an agent's ``state_dict()``.
        prefix: path of ``tree`` itself ("" at the top).
    """
    out: dict[str, np.ndarray] = {}
    if isinstance(tree, Mapping) or isinstance(tree, list | tuple):
        items = tree.items() if isinstance(tree, Mapping) else enumerate(tree)
        for key, value in items:
            name = str(key)
            if SEP in name:
                raise WeightsError(f"state key {name!r} under {prefix or '<top>'!r} contains {SEP!r}")
            out.update(flatten(value, f"{prefix}{SEP}{name}" if prefix else name))
        return out
    array = _leaf_array(tree, prefix)
    if array is not None:
        out[prefix] = array
    return out


META = "__meta__"
"""Top-level key of the file's own facts (e.g. the env step it was written at), kept apart from the agent's."""


def save_weights(agent: Any, path: str | os.PathLike[str], meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``agent.state_dict()`` as an ``.npz`` of plain arrays, atomically; returns the path.

    Args:
        agent: anything with ``state_dict()`` whose leaves are tensors, arrays, numbers, strings or ``None``.
        path: target file (conventionally ``<run dir>/weights.npz``).
        meta: numbers or strings about the file (the runner writes ``env_steps``); read by :func:`weights_meta`.
    """
    state = agent.state_dict()
    if META in state:
        raise WeightsError(f"agent state_dict has a {META!r} entry, which weights files reserve")
    arrays = flatten({**state, META: dict(meta or {})})
    if "allow_pickle" in arrays:  # np.savez would take it for its own keyword
        raise WeightsError("agent state_dict has a top-level 'allow_pickle' entry, which .npz files cannot name")
    return atomic_write(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]


def weights_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``meta`` a weights file was saved with, as Python numbers and strings (never unpickled).

    Args:
        path: the ``.npz`` file.
    """
    prefix = f"{META}{SEP}"
    return {k.removeprefix(prefix): v.item() for k, v in read_weights(path).items() if k.startswith(prefix)}


def read_weights(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The arrays of a weights file, read with ``allow_pickle=False``: nothing in the file is executed.

    Raises:
        WeightsError: missing file, not an ``.npz``, or an entry that would need unpickling.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no weights file at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise WeightsError(f"{path} is not a plain weights file (refused without unpickling anything): {exc}") from exc


def _restore(template: Any, arrays: dict[str, np.ndarray], path: str, source: Path) -> Any:
    """``template``'s structure with its leaves taken from ``arrays`` (shapes and dtypes checked)."""
    if isinstance(template, Mapping):
        return {k: _restore(v, arrays, f"{path}{SEP}{k}" if path else str(k), source) for k, v in template.items()}
    if isinstance(template, list | tuple):
        items = [_restore(v, arrays, f"{path}{SEP}{i}" if path else str(i), source) for i, v in enumerate(template)]
        return type(template)(items) if isinstance(template, list) else tuple(items)
    if template is None:
        return None
    if path not in arrays:
        raise WeightsError(f"{source} lacks {path!r}: was it written for another agent or another version?")
    saved = arrays[path]
    expected = _leaf_array(template, path)
    assert expected is not None  # None templates returned above
    if _is_tensor(template) or isinstance(template, np.ndarray):
        if saved.shape != expected.shape or saved.dtype != expected.dtype:
            raise WeightsError(
                f"{source}: {path!r} is {saved.dtype}{list(saved.shape)}, this agent has "
                f"{expected.dtype}{list(expected.shape)}: was it written with other network sizes or another env?"
            )
        if _is_tensor(template):
            import torch

            return torch.from_numpy(saved.copy()).to(template.device)
        return saved.copy()
    if saved.shape != ():
        raise WeightsError(f"{source}: {path!r} holds an array of shape {list(saved.shape)}, expected one value")
    value = saved.item()
    if isinstance(template, bool):
        return bool(value)
    if isinstance(template, int):
        return int(value)  # from int64 or from the decimal string of a large int
    if isinstance(template, float):
        return float(value)
    if isinstance(template, str):
        return str(value)
    return type(template)(value)  # numpy scalars


def load_weights(agent: Any, path: str | os.PathLike[str]) -> None:
    """Load a file from :func:`save_weights` into a freshly built agent of the same config, never unpickling.

    Args:
        agent: the agent to fill; its own ``state_dict()`` gives the structure, shapes and dtypes expected.
        path: the ``.npz`` file.

    Raises:
        WeightsError: unreadable or pickled file, a missing entry, or a shape/dtype that differs (named).
    """
    source = Path(path)
    arrays = read_weights(source)
    agent.load_state_dict(_restore(agent.state_dict(), arrays, "", source))
