"""docs/metrics.md is the whole list of metric names: what the agents and the runner log, both ways."""

from __future__ import annotations

import importlib.util
import re
import warnings
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from cardio.agents.base import SpaceError
from cardio.build import build_runner
from cardio.loggers import Logger
from tests.conftest import CONFIG_DIR, compose_train, shrink

TABLE = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
HAS_JAX = importlib.util.find_spec("jax") is not None
AGENTS = sorted(
    p.stem
    for p in (Path(CONFIG_DIR) / "agent").glob("*.yaml")
    if not p.stem.startswith("_") and (HAS_JAX or not p.stem.endswith("_jax"))  # JAX twins need the jax extra
)
ENVS = ("CartPole", "Pendulum")  # a Discrete and a Box action space: train/std is Box-only


def documented() -> dict[str, set[str]]:
    """``{key: {emitters}}`` from the table's rows."""
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \|", TABLE.read_text(), re.M)
    assert rows, f"no table rows in {TABLE}"
    table = {key: {e.strip() for e in who.split(",")} for key, who in rows}
    return {key: {e for e in who if e in AGENTS or e == "runner"} for key, who in table.items()}


class Keys:
    """A logger sink keeping the names of everything logged."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def write(self, metrics, step) -> None:
        self.seen |= set(metrics)

    def close(self) -> None:
        pass


def tiny(agent: str, env: str, tmp_path: Path):
    cfg = compose_train([f"agent={agent}", f"env={env}", "~zoo"])
    cfg = shrink(cfg, tmp_path, total_steps=64)
    with open_dict(cfg):
        cfg.runner.eval_episodes = 1
        cfg.runner.checkpoint_dir = None
        cfg.env.num_envs = 1
        schedule = cfg.runner.schedule
        if "dataset" in schedule:  # offline: a tiny dataset recorded here for this env
            schedule.dataset, schedule.gradient_steps, schedule.batch_size = tiny_dataset(env), 16, 8
        elif "n_steps" in schedule:
            schedule.n_steps = 32
            if "batch_size" in cfg.agent:
                cfg.agent.batch_size = 32
        else:
            schedule.learning_starts, schedule.batch_size, schedule.train_freq = 32, 8, 4
        if "hidden_sizes" in cfg.agent:
            cfg.agent.hidden_sizes = [8]
        if "burn_in" in cfg.get("buffer", {}):
            cfg.buffer.capacity = 200
    return cfg


def tiny_dataset(env: str) -> str:
    """A 3-episode uniform-policy dataset of ``env`` under ``$MINARI_DATASETS_PATH`` (made once)."""
    from cardio.build import build_env
    from cardio.datasets.minari import datasets_path, write_dataset
    from cardio.datasets.record import record_episodes

    dataset_id = f"test/{env}/uniform-v0"
    if not (datasets_path() / dataset_id).exists():
        vec = build_env(compose_train([f"env={env}", "env.num_envs=1"]))
        episodes = record_episodes(None, vec, 3, epsilon=1.0, seed=0)
        space = (vec.single_observation_space, vec.single_action_space)
        write_dataset(dataset_id, episodes, env_spec=None, observation_space=space[0], action_space=space[1])
    return dataset_id


def emitted(tmp_path: Path) -> dict[str, set[str]]:
    """``{key: {emitters}}`` from tiny real runs of every agent option on every env it accepts."""
    found: dict[str, set[str]] = defaultdict(set)
    torch.set_num_threads(1)
    for agent in AGENTS:
        ran = False
        for env in ENVS:
            keys = Keys()
            try:
                runner = build_runner(tiny(agent, env, tmp_path / agent / env), logger=Logger({"keys": keys}))
            except SpaceError:
                continue
            update = runner.agent.update
            from_agent: set[str] = set()

            def recording_update(batch, update=update, from_agent=from_agent):
                metrics = update(batch)
                from_agent.update(k for k in metrics if k != "td_error")  # td_error feeds PER, never logged
                return metrics

            runner.agent.update = recording_update  # type: ignore[method-assign]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                runner.run()
            assert runner.updates > 0, f"agent={agent} env={env}: the tiny run made no update"
            for key in keys.seen:
                found[key].add(agent if key in from_agent else "runner")
            ran = True
        assert ran, f"agent={agent} runs on none of {ENVS}"
    return found


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, set[str]]]:
    tmp_path = tmp_path_factory.mktemp("metrics")
    with pytest.MonkeyPatch.context() as patch:  # undone after this module: later tests in the worker see no trace
        patch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))  # the offline agents' tiny datasets
        yield emitted(tmp_path)


def test_every_logged_metric_is_in_the_table_with_its_emitters(logged: dict[str, set[str]]) -> None:
    table = documented()
    missing = sorted(set(logged) - set(table))
    assert not missing, f"logged but not in docs/metrics.md: {missing} (emitted by {[logged[k] for k in missing]})"
    wrong = {k: (sorted(logged[k]), sorted(table[k])) for k in logged if not logged[k] <= table[k]}
    assert not wrong, f"'emitted by' misses who logs these keys (logged by, table says): {wrong}"


def test_every_table_row_is_logged_by_each_emitter_it_names(logged: dict[str, set[str]]) -> None:
    table = documented()
    never = sorted(set(table) - set(logged))
    assert not never, f"docs/metrics.md rows no run logged: {never}"
    wrong = {k: (sorted(table[k]), sorted(logged[k])) for k in table if table[k] != logged[k]}
    assert not wrong, f"rows naming emitters that do not log them (table says, logged by): {wrong}"
