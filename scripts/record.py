"""Record a Minari dataset from trained cardio runs: ``make dataset recipe=cartpole_mixed seed=0``.

A recipe (``configs/dataset/<name>.yaml``, or a path) names the dataset id and its sources; ``key=value``
arguments override recipe keys (``seed=3``, ``sources.0.episodes=20``, ``overwrite=true``). Each source is a
run dir written by ``scripts/train.py`` and one of

* ``kind: agent``: its agent (from ``checkpoint``, default ``<run>/last.ckpt``) plays ``episodes`` episodes with
  the chosen exploration (``epsilon``: probability of a uniform action; ``explore``: the agent's own training
  exploration), on the run's env, seeded from the recipe's ``seed`` and the source's position;
* ``kind: buffer``: the replay buffer saved in that checkpoint, cut into episodes.

Several sources make a mixture (e.g. a converged and an early checkpoint). The dataset keeps the env's spec, so
``minari.load_dataset(id).recover_environment()`` rebuilds it. Recording is deterministic for a seed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from cardio import checkpoint
from cardio.build import build_env, build_runner, seed_everything
from cardio.datasets.minari import write_dataset
from cardio.datasets.record import buffer_episodes, record_episodes
from cardio.errors import ConfigError, report_user_errors
from cardio.loggers import Logger
from cardio.paths import config_dirs, group_files, use_working_directory


def load_recipe(args: list[str]) -> DictConfig:
    """``recipe=<name or path>`` plus ``key=value`` overrides -> the merged recipe. A name is looked up in
    ``configs/dataset/`` of cardio and of the user (``./configs`` or ``$CARDIO_CONFIG_PATH``, cardio/paths.py)."""
    overrides = [a for a in args if not a.startswith("recipe=")]
    names = [a.split("=", 1)[1] for a in args if a.startswith("recipe=")]
    folders = " or ".join(str(d / "dataset") for d in config_dirs())
    if len(names) != 1 or any("=" not in a for a in args):
        raise ConfigError(
            f"usage: scripts/record.py recipe=<name in {folders} or a .yaml path> [key=value ...]; got {args}"
        )
    recipes = group_files("dataset")
    path = Path(names[0])
    if not path.is_file():
        path = recipes.get(names[0], path)
    if not path.is_file():
        raise ConfigError(f"recipe={names[0]}: no such file, nor a recipe in {folders}; recipes: {sorted(recipes)}")
    recipe = OmegaConf.load(path)
    if not isinstance(recipe, DictConfig) or not isinstance(recipe.get("sources"), ListConfig) or not recipe.sources:
        raise ConfigError(f"recipe {path}: expected a mapping with a non-empty list of sources")
    for item in overrides:  # `sources.0.episodes=20` reaches into the list, which a dotlist merge cannot
        key, value = item.split("=", 1)
        check_recipe_key(key, len(recipe.sources), f"{item} (recipe {path})")
        OmegaConf.update(recipe, key, yaml.safe_load(value), merge=True)
    check_recipe(recipe, path)
    return recipe


RECIPE_KEYS = ("dataset_id", "seed", "overwrite", "algorithm_name", "description", "sources")
SOURCE_KEYS = ("run", "kind", "episodes", "epsilon", "explore", "checkpoint")


def check_recipe_key(key: str, n_sources: int, where: str) -> None:
    """Refuse a key no recipe has (a typo, or ``episodes=`` meant for a source): it would be added and ignored."""
    parts = key.split(".")
    if len(parts) == 1 and parts[0] in RECIPE_KEYS:
        return
    if len(parts) == 3 and parts[0] == "sources" and parts[1].isdigit() and parts[2] in SOURCE_KEYS:
        if int(parts[1]) < n_sources:
            return
        raise ConfigError(f"{where}: there are {n_sources} sources, numbered from 0")
    raise ConfigError(
        f"{where}: no such recipe key; a recipe has {', '.join(RECIPE_KEYS)}, and each source "
        f"sources.<i>.{{{','.join(SOURCE_KEYS)}}}"
    )


def check_recipe(recipe: DictConfig, path: Path) -> None:
    """Every key known and every source's values in range, before any run is loaded."""
    for key in map(str, recipe):
        check_recipe_key(key, len(recipe.sources), f"recipe {path}: {key}")
    for i, source in enumerate(recipe.sources):
        for name in map(str, source):
            key = f"sources.{i}.{name}"
            check_recipe_key(key, len(recipe.sources), f"recipe {path}: {key}")
        where = f"recipe {path}, sources.{i}"
        if source.get("run") is None:
            raise ConfigError(f"{where}: no run (the run dir of scripts/train.py to record from)")
        kind = source.get("kind", "agent")
        if kind not in ("agent", "buffer"):
            raise ConfigError(f"{where}.kind={kind!r}: use agent or buffer")
        episodes = source.get("episodes")
        if kind == "agent" and (not isinstance(episodes, int) or isinstance(episodes, bool) or episodes < 1):
            raise ConfigError(f"{where}.episodes={episodes!r}: expected a positive integer")
        epsilon = source.get("epsilon", 0.0)
        if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not 0.0 <= epsilon <= 1.0:
            raise ConfigError(f"{where}.epsilon={epsilon!r}: expected a probability in [0, 1]")


def source_episodes(source: DictConfig, seed: int) -> tuple[list[dict[str, Any]], DictConfig]:
    """The episodes one source contributes, and the run's config."""
    run = Path(source.run)
    config_path = run / "config.yaml"
    if not config_path.is_file():
        raise ConfigError(f"source run={run} has no config.yaml; pass a run dir written by scripts/train.py")
    cfg = OmegaConf.load(config_path)
    assert isinstance(cfg, DictConfig)
    runner = build_runner(cfg, logger=Logger())
    runner.load(checkpoint.resolve(source.get("checkpoint") or run))
    kind = source.get("kind", "agent")
    if kind == "buffer":  # else "agent": check_recipe refused any other kind
        return buffer_episodes(runner.buffer), cfg
    seed_everything(seed)  # the agent's own sampling (SAC) draws from torch's global generator
    env_cfg = cfg.copy()
    env_cfg.env.num_envs = 1
    env_cfg.seed = seed
    env = build_env(env_cfg)
    episodes = record_episodes(
        runner.agent,
        env,
        int(source.episodes),
        epsilon=float(source.get("epsilon", 0.0)),
        explore=bool(source.get("explore", False)),
        seed=seed,
    )
    env.close()
    return episodes, cfg


def main(argv: list[str] | None = None) -> Path:
    """``make dataset``: a refused recipe or source is one ``error:`` line and exit code 2, as for training."""
    with report_user_errors():
        return record(sys.argv[1:] if argv is None else argv)


def record(args: list[str]) -> Path:
    """Record the dataset the recipe in ``args`` describes; returns where Minari wrote it."""
    use_working_directory()  # a source run's own agent module (`_target_: my_agent.MyConfig`) is importable
    recipe = load_recipe(args)
    episodes: list[dict[str, Any]] = []
    cfg = None
    for i, source in enumerate(recipe.sources):
        got, cfg = source_episodes(source, seed=int(recipe.seed) * 1000 + i)
        returns = [float(np.sum(ep["reward"])) for ep in got]
        print(f"{source.run} ({source.get('kind', 'agent')}): {len(got)} episodes, mean return {np.mean(returns):.1f}")
        episodes.extend(got)
    assert cfg is not None, "a recipe needs at least one source"
    # The spaces are those the agent saw (cardio's wrappers applied); the spec is the registered env's.
    env_cfg = cfg.copy()
    env_cfg.env.num_envs = 1
    env = build_env(env_cfg)
    if cfg.env.get("wrappers"):
        print(f"note: the dataset's env spec is {cfg.env.id} without cardio's wrappers {list(cfg.env.wrappers)}")
    path = write_dataset(
        recipe.dataset_id,
        episodes,
        env_spec=gym.spec(cfg.env.id),
        observation_space=env.single_observation_space,
        action_space=env.single_action_space,
        algorithm_name=recipe.get("algorithm_name"),
        description=recipe.get("description"),
        overwrite=bool(recipe.get("overwrite", False)),
    )
    env.close()
    returns = [float(np.sum(ep["reward"])) for ep in episodes]
    steps = sum(len(ep["reward"]) for ep in episodes)
    print(
        f"wrote {recipe.dataset_id} to {path}: {len(episodes)} episodes, {steps} steps, "
        f"mean return {np.mean(returns):.1f}"
    )
    return path


if __name__ == "__main__":
    main()
