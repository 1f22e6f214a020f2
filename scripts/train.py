"""Train an agent: ``make train agent=dqn env=CartPole seed=3`` (any Hydra override works).

Composes ``configs/train.yaml``, prints and saves the resolved config, builds env, agent, buffer, logger and
runner, trains, and returns the final ``eval/mean_reward`` so Hydra sweepers can optimise it.
``resume=<run dir or checkpoint>`` continues an interrupted run in its own run dir (docs/checkpoints.md).
Ctrl-C or SIGTERM writes a checkpoint, closes the sinks and exits with 130 (143 for SIGTERM).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from cardio import checkpoint, provenance
from cardio.build import build_runner, save_config
from cardio.loggers import print_config_tree

_default_format = warnings.formatwarning


def format_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
) -> str:
    """cardio's warnings about the config (e.g. ``runner.total_steps`` not a multiple of a rollout) are raised in
    objects Hydra instantiates, so Python's default format would point into Hydra's internals: print those as the
    message alone, which names the config key. Warnings from anywhere else keep their file and line."""
    if f"{Path('hydra', '_internal')}" in filename:
        return f"{category.__name__}: {message}\n"
    return _default_format(message, category, filename, lineno, line)


warnings.formatwarning = format_warning


@hydra.main(config_path="../configs", config_name="train", version_base=None)
def main(cfg: DictConfig) -> float:
    ckpt = None
    if cfg.get("resume") is not None:
        cfg, ckpt = checkpoint.resume_config(cfg, list(HydraConfig.get().overrides.task))
    print_config_tree(cfg)
    save_config(cfg, cfg.run_dir)
    note = provenance.record_run(cfg.run_dir, cfg.get("device", "cpu"), resuming=ckpt is not None)
    if note is not None:
        print(note)
    runner = build_runner(cfg)
    if ckpt is not None:
        print(f"resuming from {ckpt}")
        runner.load(ckpt)
        runner.total_steps = int(cfg.runner.total_steps)  # `runner.total_steps=...` may extend a resumed run
    logger = runner.logger
    if logger is not None:
        logger.log_config(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    exit_code = 1  # an exception on the way out marks the run failed (W&B included)
    try:
        if runner.env_steps >= runner.total_steps:
            print(f"run already at {runner.env_steps} env steps; raise runner.total_steps to train longer")
            metrics = dict(runner.last_eval)
        else:
            metrics = runner.run()
        exit_code = 0
    except checkpoint.Interrupted as stop:
        print(stop, file=sys.stderr)
        exit_code = stop.exit_code
    except KeyboardInterrupt:
        exit_code = 130
        raise
    finally:
        if logger is not None:
            logger.close(exit_code)
    print(f"run dir: {cfg.run_dir}")
    if exit_code:
        sys.exit(exit_code)
    return float(metrics.get("eval/mean_reward", float("nan")))


if __name__ == "__main__":
    main()
