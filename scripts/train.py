"""Train an agent: ``make train agent=dqn env=CartPole seed=3`` (any Hydra override works).

Composes ``configs/train.yaml``, prints and saves the resolved config, builds env, agent, buffer, logger and
runner, trains, and returns the final ``eval/mean_reward`` so Hydra sweepers can optimise it.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from cardio.build import build_runner, save_config
from cardio.loggers import print_config_tree


@hydra.main(config_path="../configs", config_name="train", version_base=None)
def main(cfg: DictConfig) -> float:
    print_config_tree(cfg)
    save_config(cfg, cfg.run_dir)
    runner = build_runner(cfg)
    try:
        metrics = runner.run()
    finally:
        if runner.logger is not None:
            runner.logger.close()
    return float(metrics.get("eval/mean_reward", float("nan")))


if __name__ == "__main__":
    main()
