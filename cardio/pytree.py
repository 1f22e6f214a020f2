"""Transitions as pytrees.

A transition is a nested dict of numpy arrays: ``obs, action, reward, next_obs, terminated, truncated`` plus any
agent extras (``log_prob``, ``value``...). Observations from Dict / Tuple spaces are themselves nested dicts /
tuples. Every buffer is a longer version of the same tree, so one set of helpers serves transitions, batches and
storage alike. The recursion is optree's; this module only fixes the conventions (``None`` is not a leaf, paths
are written ``"obs/pixels"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import optree

Tree = Any
"""A nested dict / tuple / list whose leaves are numpy arrays (or scalars)."""


def tree_map(fn: Callable[..., Any], tree: Tree, *rest: Tree) -> Tree:
    """Apply ``fn`` leaf-wise to one or more trees of the same structure."""
    return optree.tree_map(fn, tree, *rest, none_is_leaf=False)


def tree_leaves(tree: Tree) -> list[Any]:
    """The leaves of ``tree`` in a fixed (sorted-key) order."""
    return optree.tree_leaves(tree, none_is_leaf=False)


def path_name(path: tuple[Any, ...]) -> str:
    """``("obs", "pixels")`` -> ``"obs/pixels"``: how error messages and logs name a leaf."""
    return "/".join(str(p) for p in path)


def named_leaves(tree: Tree) -> dict[str, Any]:
    """Flat ``{"obs/pixels": leaf, ...}`` view of a tree, in leaf order."""
    paths, leaves, _ = optree.tree_flatten_with_path(tree, none_is_leaf=False)
    return {path_name(p): leaf for p, leaf in zip(paths, leaves, strict=True)}


def structure(tree: Tree) -> optree.PyTreeSpec:
    """The tree's shape without its leaves; equal structures have equal specs."""
    return optree.tree_structure(tree, none_is_leaf=False)


def leading_dim(tree: Tree) -> int:
    """The shared size of every leaf's first axis; raises if the leaves disagree."""
    sizes = {name: np.shape(leaf)[0] if np.ndim(leaf) else None for name, leaf in named_leaves(tree).items()}
    distinct = set(sizes.values())
    if len(distinct) != 1 or None in distinct:
        raise ValueError(f"every field needs the same leading (batch) dimension; got {sizes}")
    return int(distinct.pop())  # type: ignore[arg-type]


def tree_index(tree: Tree, index: Any) -> Tree:
    """``leaf[index]`` for every leaf."""
    return tree_map(lambda leaf: leaf[index], tree)


def tree_stack(trees: list[Tree], axis: int = 0) -> Tree:
    """Stack a list of same-structured trees into one tree with a new axis."""
    return tree_map(lambda *leaves: np.stack(leaves, axis=axis), *trees)


def tree_set(target: Tree, index: Any, source: Tree) -> None:
    """In place: ``target_leaf[index] = source_leaf`` for every leaf (structures must match)."""
    for dst, src in zip(tree_leaves(target), tree_leaves(source), strict=True):
        dst[index] = src


def tree_copy(tree: Tree) -> Tree:
    """A deep copy of every leaf."""
    return tree_map(np.array, tree)
