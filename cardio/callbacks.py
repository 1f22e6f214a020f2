"""The callback protocol: what a run tells the objects that watch it (``cardio/sb3_files.py``, Optuna pruning).

Every method is optional: the runner calls those a callback has. Raising from a hook stops the run.
"""

from __future__ import annotations

from typing import Any, Protocol


class Callback(Protocol):
    """Hooks into a run; every method is optional. Raising from a hook stops the run (e.g. Optuna pruning).

    ``on_episode(runner, env, episode_return, length)`` hears of every finished training episode (the env's own
    return); ``on_eval`` gets the metrics, and ``runner.last_eval_episodes`` holds that evaluation's
    per-episode ``(returns, lengths)``; ``on_load`` hears that the runner was restored from a checkpoint.
    """

    def on_step_end(self, runner: Any) -> None: ...

    def on_eval(self, runner: Any, metrics: dict[str, float]) -> None: ...

    def on_episode(self, runner: Any, env: int, episode_return: float, length: int) -> None: ...

    def on_load(self, runner: Any) -> None: ...
