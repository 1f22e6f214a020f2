"""Weights & Biases sink: one W&B run per cardio run, grouped so a multirun's seeds sit together.

Never blocks training: any W&B failure (import, init, network) is warned about by the Logger and the sink is
skipped. Without ``WANDB_API_KEY`` (and no ``WANDB_MODE``) it runs ``offline``: the run is written under
``<run_dir>/wandb`` and can be uploaded later with ``wandb sync``. Tests use ``mode: disabled``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def default_mode() -> str:
    """``$WANDB_MODE`` if set, else ``online`` with an API key and ``offline`` without one."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


def default_group(config: Mapping[str, Any]) -> str:
    """``<agent>-<env id>[-<overrides>]``: the Hydra job's overrides without the seed (and resume), as in the
    multirun subdir names, so every seed of one configuration lands in one group."""
    agent = str(config.get("agent", {}).get("_target_", "agent")).rsplit(".", 1)[-1].removesuffix("Config")
    parts = [agent, str(config.get("env", {}).get("id", "env"))]
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = HydraConfig.get().job.override_dirname
    except Exception:  # not inside a Hydra app (tests, notebooks)
        overrides = ""
    return "-".join(parts + ([overrides] if overrides else []))


class WandbSink:
    """Logs scalars to a W&B run started on first use, with the resolved config attached.

    Args:
        project: W&B project.
        dir: where W&B keeps its files, normally the run dir (``<dir>/wandb/...``).
        entity: W&B user or team (``None``: your default).
        group: runs sharing it are grouped in the UI (``None``: :func:`default_group`, so the seeds of one
            multirun configuration group together).
        job_type: e.g. ``train`` or ``eval``.
        name: run name (``None``: the run dir's name).
        tags: run tags.
        mode: ``online``, ``offline`` or ``disabled`` (``None``: :func:`default_mode`).
    """

    def __init__(
        self,
        project: str = "cardio",
        dir: str | Path | None = None,
        entity: str | None = None,
        group: str | None = None,
        job_type: str | None = "train",
        name: str | None = None,
        tags: list[str] | None = None,
        mode: str | None = None,
    ) -> None:
        self.project, self.entity, self.group, self.job_type = project, entity, group, job_type
        self.dir = Path(dir) if dir is not None else None
        self.name = name if name is not None else (self.dir.name if self.dir is not None else None)
        self.tags = list(tags or [])
        self.mode = mode or default_mode()
        self.config: dict[str, Any] = {}
        self.run: Any = None
        self.run_id: str | None = None

    def _init(self) -> Any:
        if self.run is None:
            import wandb

            if self.dir is not None:
                self.dir.mkdir(parents=True, exist_ok=True)
                id_file = self.dir / "wandb_run_id.txt"
                if self.run_id is None and id_file.is_file():  # a resumed run continues its W&B run
                    self.run_id = id_file.read_text().strip()
            self.run = wandb.init(
                project=self.project,
                entity=self.entity,
                group=self.group,
                job_type=self.job_type,
                name=self.name,
                tags=self.tags,
                dir=str(self.dir) if self.dir is not None else None,
                config=self.config,
                mode=self.mode,  # type: ignore[arg-type]
                id=self.run_id,
                resume="allow" if self.run_id is not None else None,
                reinit="create_new",  # each multirun job in one process gets its own run
            )
            self.run_id = self.run.id
            if self.dir is not None and self.mode != "disabled":
                (self.dir / "wandb_run_id.txt").write_text(f"{self.run_id}\n")
        return self.run

    def log_config(self, config: Mapping[str, Any]) -> None:
        self.config = dict(config)
        if self.group is None:
            self.group = default_group(config)
        if self.run is not None:
            self.run.config.update(self.config, allow_val_change=True)

    def write(self, metrics: Mapping[str, float], step: int) -> None:
        run = self._init()
        clean = {k: v for k, v in metrics.items() if not (isinstance(v, float) and not math.isfinite(v))}
        run.log({**clean, "time/total_timesteps": step}, step=step)

    def close(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None
