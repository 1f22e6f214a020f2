"""Replay and rollout storage: every buffer is a longer version of the transition pytree."""

from cardio.buffers.circular import BufferError, CircularBuffer

__all__ = ["BufferError", "CircularBuffer"]
