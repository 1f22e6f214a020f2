"""Console sink (rich): a live progress line, a tidy table per log call, a final summary.

On a terminal the progress line (bar, steps, steps/s, ETA, last eval, episode return) stays at the bottom and
tables print above it. When stdout is not a terminal (a log file, a Slurm job, a captured test) there is no live
line and no control codes: each table's title carries the same progress facts as plain text.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

RETURN_KEY = "rollout/ep_rew_mean"
EVAL_KEY = "eval/mean_reward"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class ConsoleSink:
    """Prints metrics as a table grouped by prefix (``rollout/``, ``train/``, ``eval/``, ``time/``).

    Args:
        every: print one table in ``every`` log calls (1 = all); eval tables always print. CSV gets every row.
        progress: show the live progress line on a terminal.
        console: the rich console to print to (default: a new one on stdout; tests pass one on a StringIO).
    """

    def __init__(self, every: int = 1, progress: bool = True, console: Console | None = None) -> None:
        self.console = console if console is not None else Console()
        self.every = max(int(every), 1)
        self.show_progress = progress
        self.calls = 0
        self.total_steps = 0
        self.step = 0
        self.start_step = 0
        self.started = time.perf_counter()
        self.last_eval: float | None = None
        self.best_eval: float | None = None
        self.last_return: float | None = None
        self._live: Progress | None = None
        self._task: TaskID | None = None
        self._next_update = 0.0

    # ------------------------------------------------------------------------------------------ progress
    def start(self, total_steps: int, step: int = 0) -> None:
        self.total_steps, self.step, self.start_step = int(total_steps), int(step), int(step)
        self.started = time.perf_counter()
        if self.show_progress and self.console.is_terminal and self._live is None:
            self._live = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[scores]}"),
                console=self.console,
                refresh_per_second=4,
            )
            fields = self._fields()
            self._task = self._live.add_task(
                "train", total=self.total_steps, completed=step, rate=fields["rate"], scores=fields["scores"]
            )
            self._live.start()

    def _rate(self) -> float:
        return (self.step - self.start_step) / max(time.perf_counter() - self.started, 1e-9)

    def _scores(self) -> str:
        parts = []
        if self.last_return is not None:
            parts.append(f"ep return {self.last_return:.4g}")
        if self.last_eval is not None:
            parts.append(f"last eval {self.last_eval:.4g}")
        return " | ".join(parts)

    def _fields(self) -> dict[str, str]:
        return {"rate": f"{self._rate():,.0f} steps/s", "scores": self._scores()}

    def status_line(self) -> str:
        """``step 12,000/50,000 (24%) | 1,234 steps/s | ETA 0:00:31 | ep return 21.5 | last eval 200``."""
        rate = self._rate()
        parts = [f"step {self.step:,}"]
        if self.total_steps:
            parts[0] += f"/{self.total_steps:,} ({100 * self.step / self.total_steps:.0f}%)"
            if rate > 0:
                eta = timedelta(seconds=round(max(self.total_steps - self.step, 0) / rate))
                parts += [f"{rate:,.0f} steps/s", f"ETA {eta}"]
        scores = self._scores()
        return " | ".join(parts + ([scores] if scores else []))

    def progress(self, step: int) -> None:
        self.step = step
        if self._live is not None and self._task is not None:
            now = time.perf_counter()
            if now < self._next_update:  # rich redraws at 4 Hz; fresher numbers would not be seen
                return
            self._next_update = now + 0.1
            fields = self._fields()
            self._live.update(self._task, completed=step, rate=fields["rate"], scores=fields["scores"])

    # ------------------------------------------------------------------------------------------ tables
    def write(self, metrics: Mapping[str, float], step: int) -> None:
        self.step = max(self.step, step)
        if RETURN_KEY in metrics:
            self.last_return = float(metrics[RETURN_KEY])
        is_eval = EVAL_KEY in metrics
        if is_eval:
            self.last_eval = float(metrics[EVAL_KEY])
            self.best_eval = self.last_eval if self.best_eval is None else max(self.best_eval, self.last_eval)
        self.calls += 1
        if (self.calls - 1) % self.every and not is_eval:
            return
        self.console.out(self.table(metrics), highlight=False)
        self._next_update = 0.0
        self.progress(self.step)

    def table(self, metrics: Mapping[str, float]) -> str:
        """A boxed two-column table, one section per metric prefix, the progress facts in the title line.

        Built as plain text and written with ``console.out``: a rich ``Table`` costs about 7x more per call, and
        this runs on every log call (docs/logging.md, "Cost").
        """
        names = sorted(metrics)
        values = [_fmt(metrics[k]) for k in names]
        w = max(map(len, names), default=6)
        vw = max(map(len, values), default=5)
        rule = "─" * (w + 2), "─" * (vw + 2)
        lines = [self.status_line(), f"┌{rule[0]}┬{rule[1]}┐"]
        for i, (name, value) in enumerate(zip(names, values, strict=True)):
            if i and name.split("/")[0] != names[i - 1].split("/")[0]:
                lines.append(f"├{rule[0]}┼{rule[1]}┤")
            lines.append(f"│ {name:<{w}} │ {value:>{vw}} │")
        lines.append(f"└{rule[0]}┴{rule[1]}┘")
        return "\n".join(lines)

    def close(self, exit_code: int = 0) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self.total_steps == 0 and self.calls == 0:
            return
        elapsed = time.perf_counter() - self.started
        summary = Table.grid(padding=(0, 2))
        summary.add_row("env steps", f"{self.step:,}" + (f" of {self.total_steps:,}" if self.total_steps else ""))
        summary.add_row("wall time", str(timedelta(seconds=round(elapsed))))
        summary.add_row("steps/s", f"{self._rate():,.0f}")
        if self.last_return is not None:
            summary.add_row(RETURN_KEY, _fmt(self.last_return))
        if self.last_eval is not None:
            summary.add_row("final eval", _fmt(self.last_eval))
            summary.add_row("best eval", _fmt(self.best_eval))
        status = "finished" if exit_code == 0 else f"stopped (exit code {exit_code})"
        self.console.print(Panel(summary, title=f"run {status}", expand=False))


def print_config_tree(cfg: Any, console: Console | None = None) -> None:
    """Print the resolved config as a rich tree, one branch per top-level group (env, agent, buffer...).

    Args:
        cfg: a DictConfig (or mapping) of the run.
        console: where to print (default: stdout).
    """
    from omegaconf import OmegaConf
    from rich.syntax import Syntax
    from rich.tree import Tree as RichTree

    console = console or Console()
    tree = RichTree("config", guide_style="dim")
    for key, value in cfg.items():
        branch = tree.add(f"[bold]{key}[/bold]")
        if OmegaConf.is_config(value):
            text = OmegaConf.to_yaml(value, resolve=True)
        else:
            text = str(value)
        branch.add(Syntax(text.rstrip(), "yaml", theme="ansi_dark", background_color="default"))
    console.print(tree)
