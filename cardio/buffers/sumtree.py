"""A vectorised float64 sum tree: set many priorities and draw many prefix-sum lookups per numpy call.

Legend: P leaf count (a power of two >= capacity), B lookups. Node 1 is the root, node ``i`` has children
``2i`` and ``2i + 1``, leaf ``j`` is node ``P + j``. Every level is one numpy call, so a batch costs
``log2(P)`` calls whatever B is. Parents are recomputed from their children (never incremented), so float error
does not accumulate over millions of updates.
"""

from __future__ import annotations

import numpy as np


class SumTree:
    """Sums of non-negative priorities over ``size`` leaves.

    Args:
        size: number of leaves (priorities), e.g. the buffer's capacity.
    """

    size: int  # leaves in use
    leaves: int  # P, a power of two
    nodes: np.ndarray  # [2P] float64 node sums; nodes[P + j] is leaf j

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self.leaves = 1 << max(0, (self.size - 1).bit_length())
        self.nodes = np.zeros(2 * self.leaves, dtype=np.float64)

    @property
    def total(self) -> float:
        """Sum of every priority."""
        return float(self.nodes[1])

    def get(self, index: np.ndarray) -> np.ndarray:
        """Priorities at leaf ``index`` (any shape)."""
        return self.nodes[np.asarray(index) + self.leaves]

    def set(self, index: np.ndarray | slice, values: np.ndarray | float) -> None:
        """Set leaves ``index`` (flat indices or a slice) to ``values`` and refresh their ancestors."""
        if isinstance(index, slice):
            index = np.arange(*index.indices(self.size))
        node = np.asarray(index, dtype=np.int64).reshape(-1) + self.leaves
        nodes, pairs = self.nodes, self.nodes.reshape(-1, 2)  # pairs[i] = (nodes[2i], nodes[2i + 1])
        nodes[node] = values
        while node[0] > 1:  # all nodes of one call sit on the same level
            node >>= 1  # duplicates are harmless: each writes the same sum
            children = pairs.take(node, axis=0)  # [B, 2]
            nodes[node] = children[:, 0] + children[:, 1]

    def find(self, mass: np.ndarray) -> np.ndarray:
        """Leaf of each prefix-sum ``mass`` (``0 <= mass < total``): the first j with cumsum[j] > mass.

        Never returns a zero-priority leaf while ``total > 0``: a rounding slip onto one (mass a hair past a
        subtree's stored sum) is redone with an exact cumulative-sum search.
        """
        mass = np.array(mass, dtype=np.float64).reshape(-1)
        original = mass.copy()
        node = np.ones(mass.shape, dtype=np.int64)
        nodes = self.nodes
        for _ in range(self.leaves.bit_length() - 1):
            node <<= 1  # left child
            left = nodes.take(node)
            right = mass >= left  # the mass lies past the left subtree
            mass -= left * right
            node += right
        leaf = node - self.leaves
        slipped = np.flatnonzero(nodes.take(node) <= 0)
        if slipped.size:  # rare: redo those exactly, O(P)
            leaf[slipped] = self._exact(original[slipped])
        return leaf

    def _exact(self, mass: np.ndarray) -> np.ndarray:
        leaves = self.nodes[self.leaves :]
        cumulative = np.cumsum(leaves)
        positive = np.flatnonzero(leaves > 0)
        found = np.searchsorted(cumulative, mass, side="right")
        # the first positive leaf at or after the found slot, else the last positive leaf
        at = np.minimum(np.searchsorted(positive, found), positive.size - 1)
        return positive[at]

    def clear(self) -> None:
        """Every priority back to 0."""
        self.nodes[:] = 0.0
