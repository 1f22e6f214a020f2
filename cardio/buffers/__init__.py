"""Replay and rollout storage: every buffer is a longer version of the transition pytree."""

from cardio.buffers.circular import BufferError, CircularBuffer
from cardio.buffers.prioritized import PrioritizedBuffer
from cardio.buffers.sequence import SequenceBuffer
from cardio.buffers.sumtree import SumTree

__all__ = ["BufferError", "CircularBuffer", "PrioritizedBuffer", "SequenceBuffer", "SumTree"]
