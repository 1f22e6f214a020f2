"""SB3's run-dir files, so SB3's and rl-zoo's tools read a cardio run: ``monitor.csv`` and ``evaluations.npz``.

``monitor.csv`` is what SB3's ``Monitor`` wrapper writes: a ``#{"t_start": ..., "env_id": ...}`` JSON line,
then ``r,l,t`` rows, one per finished training episode (the env's own return, its length in env steps, seconds
since the run started). ``stable_baselines3.common.monitor.load_results(run_dir)`` reads it and
``results_plotter.ts2xy(df, "timesteps")`` turns it into a learning curve; rl-zoo's ``plot_train.py`` reads the
same file. ``evaluations.npz`` is what SB3's ``EvalCallback`` writes: ``timesteps [E]``, ``results [E, K]`` and
``ep_lengths [E, K]`` for E evaluations of K episodes, read by rl-zoo's ``plot_from_file``/``all_plots.py``.

Both are kept consistent with checkpoints: a resumed run first drops the episodes and evaluations recorded after
its checkpoint (a crash between checkpoint and exit leaves some), then appends.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from cardio.checkpoint import atomic_write

MONITOR_NAME = "monitor.csv"
"""Episode file name; SB3's ``load_results`` reads every ``*monitor.csv`` in a folder."""
EVALUATIONS_NAME = "evaluations.npz"
"""Evaluation file name, as SB3's ``EvalCallback(log_path=run_dir)`` writes it."""


class SB3Files:
    """A runner callback writing ``monitor.csv`` and ``evaluations.npz`` into a run dir (module docstring).

    Args:
        run_dir: the run dir; created if missing.
        env_id: written in the monitor header, as SB3's ``Monitor`` does.
    """

    def __init__(self, run_dir: str | Path, env_id: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.env_id = env_id
        self.monitor = self.run_dir / MONITOR_NAME
        self.evaluations = self.run_dir / EVALUATIONS_NAME
        self._file: io.TextIOWrapper | None = None
        self._keep: tuple[int, int] | None = None  # (episodes, env steps) to keep from files of a resumed run
        self._started = False  # this run wrote the files' start: a reopen after close() appends
        self._evals: dict[str, list[Any]] = {"timesteps": [], "results": [], "ep_lengths": []}

    # ---------------------------------------------------------------------------------------------- hooks
    def on_load(self, runner: Any) -> None:
        """The runner was restored from a checkpoint: keep what the files held up to it, append after it."""
        self.close()
        self._keep = (runner.gatherer.stats.episodes, runner.env_steps)
        self._started = False

    def on_episode(self, runner: Any, env: int, episode_return: float, length: int) -> None:
        if self._file is None:
            self._open(runner)
        elapsed = time.perf_counter() - runner.loop.run_started
        assert self._file is not None
        self._file.write(f"{episode_return:.6g},{length},{elapsed:.6g}\n")

    def on_step_end(self, runner: Any) -> None:
        if self._file is not None:
            self._file.flush()

    def on_eval(self, runner: Any, metrics: dict[str, float]) -> None:
        if self._file is None:
            self._open(runner)
        returns, lengths = runner.last_eval_episodes
        self._evals["timesteps"].append(runner.env_steps)
        self._evals["results"].append(list(returns))
        self._evals["ep_lengths"].append(list(lengths))
        self._write_evaluations()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    # ---------------------------------------------------------------------------------------------- files
    def _open(self, runner: Any) -> None:
        """Start both files, or for a resumed run keep their entries up to the checkpoint; after a
        :meth:`close` (the runner closed between two ``run()`` calls), append to what this run wrote."""
        if self._started:
            self._file = self.monitor.open("a")
            return
        self._started = True
        self.run_dir.mkdir(parents=True, exist_ok=True)
        header = "#" + json.dumps({"t_start": time.time(), "env_id": self.env_id}) + "\nr,l,t\n"
        rows: list[str] = []
        if self._keep is not None and self.monitor.is_file():
            lines = self.monitor.read_text().splitlines(keepends=True)
            header = "".join(lines[:2])
            rows = lines[2 : 2 + self._keep[0]]
        self.monitor.write_text(header + "".join(rows))
        self._file = self.monitor.open("a")
        if self._keep is not None and self.evaluations.is_file():
            with np.load(self.evaluations) as saved:
                keep = saved["timesteps"] <= self._keep[1]
                self._evals = {k: [row.tolist() for row in saved[k][keep]] for k in ("results", "ep_lengths")}
                self._evals["timesteps"] = saved["timesteps"][keep].tolist()
            self._write_evaluations()
        self._keep = None

    def _write_evaluations(self) -> None:
        """``np.savez`` of the three arrays, atomically; ragged evaluations are padded with NaN."""
        width = max((len(r) for r in self._evals["results"]), default=0)

        def pad(rows: list[list[float]]) -> np.ndarray:
            return np.array([list(r) + [np.nan] * (width - len(r)) for r in rows], dtype=np.float64)

        arrays = {
            "timesteps": np.asarray(self._evals["timesteps"], dtype=np.int64),
            "results": pad(self._evals["results"]),
            "ep_lengths": pad(self._evals["ep_lengths"]),
        }
        atomic_write(self.evaluations, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]
