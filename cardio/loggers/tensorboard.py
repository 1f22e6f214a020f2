"""TensorBoard sink: event files under ``<run_dir>/tensorboard`` (``tensorboard --logdir outputs``).

Scalars keep cardio's names, so ``rollout/ep_rew_mean`` and ``train/loss`` land in TensorBoard's ``rollout``
and ``train`` sections, as with SB3. The config goes in as a text summary. Needs the ``tensorboard`` package
(``pip install cardio[tensorboard]``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class TensorBoardSink:
    """Writes scalars with ``torch.utils.tensorboard.SummaryWriter``; the writer opens on first use.

    Args:
        log_dir: directory for the event files, e.g. ``${run_dir}/tensorboard``.
        flush_secs: seconds between flushes to disk.
    """

    def __init__(self, log_dir: str | Path, flush_secs: int = 30) -> None:
        self.log_dir = Path(log_dir)
        self.flush_secs = int(flush_secs)
        self.purge_step: int | None = None
        self._writer: Any = None

    @property
    def writer(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.log_dir), flush_secs=self.flush_secs, purge_step=self.purge_step)
        return self._writer

    def resume(self, step: int) -> None:
        """Events logged after ``step`` by the interrupted run are hidden by TensorBoard (``purge_step``)."""
        if self._writer is None:
            self.purge_step = step + 1

    def log_config(self, config: Mapping[str, Any]) -> None:
        text = json.dumps(config, indent=2, default=str)
        self.writer.add_text("config", f"```\n{text}\n```", global_step=0)

    def write(self, metrics: Mapping[str, float], step: int) -> None:
        writer = self.writer
        for name, value in metrics.items():
            if isinstance(value, int | float) and math.isfinite(value):
                writer.add_scalar(name, value, global_step=step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
