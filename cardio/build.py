"""From a composed Hydra config to live objects: env, agent, buffer, logger, runner.

``scripts/train.py``, the sweep driver and the evaluation script all build through here, so a run composed
anywhere is built the same way. Each builder takes the whole config because pieces depend on each other
(the buffer's stream count is the env's ``num_envs``; the agent's spaces are the env's).
"""

from __future__ import annotations

import os
import random
import sys
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from cardio import weights
from cardio.agents.base import Agent
from cardio.buffers.circular import CircularBuffer, resolve_memory_saving
from cardio.loggers.base import Logger
from cardio.runner import EVAL_SEED_OFFSET, OnPolicySchedule, Runner
from cardio.sb3_files import SB3Files
from cardio.schedules.offline import OfflineSchedule


def seed_everything(seed: int | None) -> None:
    """Seed Python, numpy's global RNG and, when a torch agent has imported it, torch (``None``: leave them
    random). Checks ``is not None``: 0 seeds. torch is never imported here, so a JAX run does not pay for it."""
    if seed is None:
        return
    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def build_env(cfg: DictConfig, evaluation: bool = False) -> gym.vector.VectorEnv:
    """The training env, or the eval env (``cfg.runner.eval_num_envs`` copies, differently seeded, without the
    env config's ``train_wrappers``: reward clipping and episodic life change learning, not the score)."""
    seed = cfg.get("seed")
    overrides: dict[str, Any] = {}
    if evaluation:
        overrides["num_envs"] = cfg.runner.get("eval_num_envs", 1)
        seed = None if seed is None else seed + EVAL_SEED_OFFSET
        if "train_wrappers" in cfg.env:
            overrides["train_wrappers"] = []
    return instantiate(cfg.env, seed=seed, _convert_="all", **overrides)


def build_agent(cfg: DictConfig, env: gym.vector.VectorEnv, agent_config: Any = None) -> Agent:
    """Build ``cfg.agent`` (an agent config dataclass; pass it when already instantiated) for the env's
    single-env spaces."""
    if agent_config is None:
        agent_config = instantiate(cfg.agent, _convert_="all")
    return agent_config.build(
        env.single_observation_space,
        env.single_action_space,
        device=cfg.get("device", "cpu"),
        seed=cfg.get("seed"),
        env_id=cfg.env.id,
    )


def build_buffer(cfg: DictConfig, env: gym.vector.VectorEnv, agent: Any = None) -> CircularBuffer:
    """The replay buffer; for an on-policy runner the capacity is forced to ``n_steps * num_envs``; for an
    offline runner it is the dataset ``runner.schedule.dataset``, checked against the env's spaces, and an
    ``agent`` with an ``on_dataset(data)`` method hears it (IQL takes its reward scale from the returns)."""
    overrides: dict[str, Any] = {"num_envs": env.num_envs, "seed": cfg.get("seed")}
    schedule = instantiate(cfg.runner.schedule)
    if isinstance(schedule, OfflineSchedule):
        return load_offline_buffer(cfg, env, schedule, agent)
    on_policy = isinstance(schedule, OnPolicySchedule)
    if on_policy:
        overrides["capacity"] = schedule.n_steps * env.num_envs
    if "memory_saving" in cfg.buffer:
        overrides["memory_saving"] = resolve_memory_saving(
            cfg.buffer.memory_saving, env.single_observation_space, on_policy
        )
    return instantiate(cfg.buffer, _convert_="all", **overrides)


def load_offline_buffer(
    cfg: DictConfig, env: gym.vector.VectorEnv, schedule: OfflineSchedule, agent: Any = None
) -> CircularBuffer:
    """The dataset of an offline run as a buffer; a dataset recorded on another env id gets a warning (its spaces
    must match the env's, or loading fails naming the dataset and the mismatch)."""
    from cardio.datasets.minari import DatasetError, load_dataset

    if not schedule.dataset:
        raise DatasetError("runner=offline needs a dataset: runner.schedule.dataset=<Minari id> (docs/offline.md)")
    data = load_dataset(
        schedule.dataset,
        observation_space=env.single_observation_space,
        action_space=env.single_action_space,
        info_keys=schedule.info_keys,
        pack=schedule.pack,
        seed=cfg.get("seed"),
    )
    if data.env_id is not None and data.env_id != cfg.env.id:
        warnings.warn(
            f"dataset {schedule.dataset!r} was recorded on {data.env_id}; evaluating on env.id={cfg.env.id}",
            stacklevel=2,
        )
    on_dataset = getattr(agent, "on_dataset", None)
    if on_dataset is not None:  # dataset statistics an agent's recipe needs (IQL's reward scale)
        on_dataset(data)
    return data.buffer


def build_logger(cfg: DictConfig) -> Logger:
    return instantiate(cfg.logger, _convert_="all")


def build_runner(cfg: DictConfig, logger: Logger | None = None, **runner_kwargs: Any) -> Runner:
    """Seed, then build env, eval env, agent, buffer and logger, and wire them into a Runner.

    The agent's config class is instantiated first: importing it imports the agent's framework (torch for the
    torch agents), so seeding and ``torch_threads`` reach torch exactly when the run uses it.
    """
    agent_config = instantiate(cfg.agent, _convert_="all")
    seed_everything(cfg.get("seed"))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(cfg.get("torch_threads", 1)))
    env = build_env(cfg)
    eval_env = build_env(cfg, evaluation=True)
    agent = build_agent(cfg, env, agent_config)
    buffer = build_buffer(cfg, env, agent)
    # resolved first: ``checkpoint_dir: ${run_dir}`` points outside the runner node
    runner_node = OmegaConf.to_container(cfg.runner, resolve=True)
    assert isinstance(runner_node, dict)
    runner_cfg = OmegaConf.create({k: v for k, v in runner_node.items() if k != "eval_num_envs"})
    runner_factory = instantiate(runner_cfg, _convert_="all")
    runner_kwargs["callbacks"] = [*runner_kwargs.get("callbacks", ()), *run_dir_callbacks(cfg)]
    return runner_factory(
        env=env,
        agent=agent,
        buffer=buffer,
        eval_env=eval_env,
        logger=logger if logger is not None else build_logger(cfg),
        seed=cfg.get("seed"),
        **runner_kwargs,
    )


def run_dir_callbacks(cfg: DictConfig) -> list[Any]:
    """Callbacks writing SB3's ``monitor.csv`` and ``evaluations.npz`` into the run dir (``cardio/sb3_files.py``),
    when the config has one."""
    run_dir = cfg.get("run_dir")
    return [] if run_dir is None else [SB3Files(run_dir, env_id=cfg.env.get("id"))]


def save_config(cfg: DictConfig, run_dir: str | Path) -> Path:
    """Write the resolved config as ``<run_dir>/config.yaml`` (what was actually run)."""
    path = Path(run_dir) / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return path


def load_agent(run_dir: str | os.PathLike[str], weights_file: str | os.PathLike[str] | None = None) -> Any:
    """The trained agent of a run dir: built from its ``config.yaml``, filled from ``weights.npz`` (no pickle).

    The config's ``_target_`` entries name the classes that are built, so read a stranger's ``config.yaml``
    before loading it; the weights file itself only ever holds numbers and strings.

    Args:
        run_dir: a run dir written by ``scripts/train.py`` (holds ``config.yaml`` and ``weights.npz``).
        weights_file: another weights file (default ``<run_dir>/weights.npz``).

    Raises:
        weights.WeightsError: no ``config.yaml`` or weights file, or weights that do not fit the agent.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise weights.WeightsError(f"{run_dir} has no config.yaml; pass a run dir written by scripts/train.py")
    cfg = OmegaConf.load(config_path)
    if not isinstance(cfg, DictConfig):
        raise weights.WeightsError(f"{config_path} is not a mapping")
    seed_everything(cfg.get("seed"))
    env = build_env(cfg, evaluation=True)
    try:
        agent = build_agent(cfg, env)
    finally:
        env.close()
    weights.load_weights(agent, run_dir / weights.WEIGHTS_NAME if weights_file is None else weights_file)
    return agent
