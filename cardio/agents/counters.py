"""Functions of the env-step counter that the torch agents and their JAX twins share (no framework imported)."""

from __future__ import annotations


def syncs_due(env_steps: int, interval: int, done: int) -> tuple[bool, int]:
    """Whether a periodic event (a hard target sync) is due, and the new count of events done.

    The event fires at the first call at or past each multiple of ``interval`` env steps. The count is a function
    of the step counter, so when the counter goes backwards (``Runner.reset()``, a meta-learning loop restarting
    its inner run) the count restarts with it instead of waiting for the old step count to come round again.

    Args:
        env_steps: env steps so far.
        interval: env steps between events.
        done: events done so far (the value this function returned last time).
    """
    due = env_steps // interval
    if due < done:  # the step counter went backwards: count afresh from here
        return False, due
    return due > done, due
