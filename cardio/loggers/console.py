"""Console sink: a tidy rich table per log call, grouped by metric prefix (``rollout/``, ``train/``...).

rich drops colours and control codes when stdout is not a terminal, so the output reads fine in a log file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table


class ConsoleSink:
    """Prints metrics as a two-column table.

    Args:
        every: print one call in ``every`` (1 = all); the CSV still gets every row.
    """

    def __init__(self, every: int = 1) -> None:
        self.console = Console()
        self.every = max(int(every), 1)
        self.calls = 0

    def write(self, metrics: Mapping[str, float], step: int) -> None:
        self.calls += 1
        if (self.calls - 1) % self.every:
            return
        table = Table(title=f"step {step:,}", show_header=False, title_justify="left", min_width=44)
        table.add_column("metric", style="cyan")
        table.add_column("value", justify="right")
        for name in sorted(metrics):
            value = metrics[name]
            table.add_row(name, f"{value:.4g}" if isinstance(value, float) else str(value))
        self.console.print(table)

    def close(self) -> None:
        pass


def print_config_tree(cfg: Any, console: Console | None = None) -> None:
    """Print the resolved config as a rich tree, one branch per top-level group (env, agent, buffer...)."""
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
