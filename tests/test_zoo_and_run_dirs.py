"""Tuned numbers and run names follow the env actually built; run dirs are unique under concurrency.

The zoo overlay is ``configs/zoo/<agent zoo_name>/<env id>.yaml`` (cardio/config.py); these tests compose
in-process for the rules and run ``scripts/train.py`` (single runs and ``-m`` multiruns, several at once) for
what lands on disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from cardio.config import claim_dir, env_name
from cardio.envs.factory import check_env_id
from cardio.errors import ConfigError
from tests.conftest import CONFIG_DIR, compose_train

ROOT = Path(__file__).resolve().parents[1]
# one zoo file per algorithm (the first by name) keeps this fast; tests/test_import_zoo.py composes and builds every one
ZOO_FILES = [sorted(folder.glob("*.yaml"))[0] for folder in sorted((Path(CONFIG_DIR) / "zoo").glob("*/"))]
TINY = [
    "logger=csv",
    "runner.total_steps=256",
    "runner.eval_freq=0",
    "runner.eval_episodes=1",
    "runner.schedule.learning_starts=64",
    "runner.schedule.gradient_steps=1",
]


# ------------------------------------------------------------------------------------------------ zoo rules
def test_env_id_alone_gets_no_other_envs_numbers() -> None:
    """`agent=dqn env.id=X` (the env group still CartPole) used to train with configs/zoo/dqn_CartPole.yaml."""
    untuned = compose_train(["agent=dqn", "env.id=CartPole-v0"])  # no zoo file for CartPole-v0
    assert untuned.zoo is None and untuned.agent.lr == pytest.approx(1e-4)  # DQN's own default, not 2.3e-3
    assert untuned.runner.schedule.train_freq == 4 and untuned.buffer.capacity == 1_000_000
    acrobot = compose_train(["agent=dqn", "env.id=Acrobot-v1"])  # Acrobot's own zoo file, not CartPole's
    overlay = OmegaConf.load(Path(CONFIG_DIR) / "zoo" / "dqn" / "Acrobot-v1.yaml")
    assert acrobot.zoo == "dqn/Acrobot-v1" and acrobot.agent.lr == overlay.agent.lr != pytest.approx(2.3e-3)
    assert acrobot == compose_train(["agent=dqn", "env=Acrobot"])  # the env group and env.id agree


@pytest.mark.parametrize("path", ZOO_FILES, ids=[f"{p.parent.name}/{p.stem}" for p in ZOO_FILES])
def test_each_zoo_file_applies_to_its_agent_and_env_id(path: Path) -> None:
    algo, env_id = path.parent.name, path.stem
    cfg = compose_train([f"agent={algo}", f"env.id={env_id}"])
    assert cfg.zoo == f"{algo}/{env_id}"
    overlay = OmegaConf.load(path)
    for key in ("agent", "runner", "buffer", "env"):
        for leaf, value in _leaves(overlay.get(key), key):
            assert OmegaConf.select(cfg, leaf) == value, leaf
    off = compose_train([f"agent={algo}", f"env.id={env_id}", "~zoo"])
    assert off.zoo is None and off != cfg


def _leaves(node: object, prefix: str) -> list[tuple[str, object]]:
    if node is None:
        return []
    container = OmegaConf.to_container(node) if OmegaConf.is_config(node) else node
    if isinstance(container, dict):
        return [pair for k, v in container.items() for pair in _leaves(v, f"{prefix}.{k}")]
    return [(prefix, container)]


def test_precedence_defaults_zoo_experiment_command_line() -> None:
    assert compose_train(["zoo=none"]).agent.lr == pytest.approx(1e-4)  # agent default
    assert compose_train(["zoo=none"]).zoo is None and compose_train(["~zoo"]).zoo is None
    assert compose_train([]).agent.lr == pytest.approx(2.3e-3)  # zoo over the default
    tuned = OmegaConf.load(Path(CONFIG_DIR) / "experiment" / "dqn_cartpole_tuned.yaml")
    experiment = compose_train(["experiment=dqn_cartpole_tuned"])
    assert experiment.zoo == "dqn/CartPole-v1"
    for leaf, value in _leaves(tuned.get("agent"), "agent"):
        assert OmegaConf.select(experiment, leaf) == value  # experiment over the zoo
    assert compose_train(["experiment=dqn_cartpole_tuned", "agent.lr=0.5"]).agent.lr == 0.5  # command line wins
    forced = compose_train(["env.id=CartPole-v0", "zoo=dqn/CartPole-v1"])  # an explicit choice is honoured
    assert forced.zoo == "dqn/CartPole-v1" and forced.agent.lr == pytest.approx(2.3e-3)


def test_cartpole_novel_has_its_own_id_and_zoo() -> None:
    from cardio.build import build_env

    dqn = compose_train(["agent=dqn", "env=CartPoleNoVel"])
    assert dqn.env.id == "CartPoleNoVel-v1" and dqn.zoo == "dqn/CartPoleNoVel-v1"
    assert compose_train(["agent=drqn", "env=CartPoleNoVel"]).zoo == "drqn/CartPoleNoVel-v1"
    assert compose_train(["agent=drqn", "env=CartPole"]).zoo is None  # no DRQN numbers for full CartPole
    env = build_env(dqn)
    assert env.single_observation_space.shape == (2,)  # cart position and pole angle only
    env.close()


def test_sweep_trials_compose_with_the_zoo_of_their_env_id() -> None:
    from cardio.sweep.driver import compose_train as sweep_compose

    assert sweep_compose(CONFIG_DIR, ["env.id=CartPole-v0"]).zoo is None
    assert sweep_compose(CONFIG_DIR, ["env.id=CartPole-v1"]).agent.lr == pytest.approx(2.3e-3)


# ------------------------------------------------------------------------------------------------ env ids
def test_env_names_and_module_ids() -> None:
    assert env_name("my_pkg.envs:Maze-v0") == "Maze-v0" and env_name("ALE/Pong-v5") == "ALE-Pong-v5"
    assert check_env_id("gymnasium.envs.classic_control:CartPole-v1") == "CartPole-v1"
    with pytest.raises(ConfigError, match="cannot import module 'no_such_pkg'"):
        check_env_id("no_such_pkg:Maze-v0")
    with pytest.raises(ConfigError, match="CartPole-v1"):
        check_env_id("CartPole-v7")


MAZE = '''
import gymnasium as gym
import numpy as np


class Maze(gym.Env):
    """Five steps to the exit; action 1 pays 1."""

    observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.full(2, self.t / 5, np.float32), float(action), self.t >= 5, False, {}


gym.register("Maze-v0", entry_point=Maze, max_episode_steps=20)
'''


def run(args: list[str], cwd: Path, pythonpath: list[Path] = ()) -> subprocess.Popen[str]:  # type: ignore[assignment]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": os.pathsep.join(map(str, [ROOT, *pythonpath]))}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return out


def test_users_own_env_by_module_id_names_the_run(tmp_path: Path) -> None:
    """`env.id=my_maze.envs:Maze-v0` works as in gym.make (no edit inside cardio); the run dir says Maze-v0."""
    package = tmp_path / "code" / "my_maze"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "envs.py").write_text(MAZE)
    work = tmp_path / "work"
    work.mkdir()
    out = finish(run(["env.id=my_maze.envs:Maze-v0", *TINY], cwd=work, pythonpath=[tmp_path / "code"]))
    assert out.splitlines()[0].startswith("zoo: none (no configs/zoo/dqn/Maze-v0.yaml")
    (run_dir,) = (work / "outputs").glob("*/*")
    assert run_dir.name.endswith("_dqn_Maze-v0"), run_dir.name
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["env"]["id"] == "my_maze.envs:Maze-v0" and saved["zoo"] is None
    assert (run_dir / "progress.csv").read_text().count("\n") >= 2 and (run_dir / "last.ckpt").is_file()


# ------------------------------------------------------------------------------------------------ unique dirs
def test_claim_dir_gives_each_claimant_its_own_dir(tmp_path: Path) -> None:
    claimed: list[Path] = []
    threads = [threading.Thread(target=lambda: claimed.append(claim_dir(tmp_path / "run"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(p.name for p in claimed) == ["run", *[f"run_{k}" for k in range(1, 8)]]
    empty = tmp_path / "empty"
    empty.mkdir()  # an existing empty dir (`hydra.run.dir=$(mktemp -d)`) is claimed once, then it is taken
    assert claim_dir(empty) == empty and claim_dir(empty) == tmp_path / "empty_1"


def test_four_runs_started_at_once_get_four_intact_run_dirs(tmp_path: Path) -> None:
    """The same run dir name for all four (what two runs started in the same second get by default)."""
    procs = [run([f"hydra.run.dir={tmp_path / 'run'}", f"seed={seed}", *TINY], cwd=tmp_path) for seed in range(4)]
    for proc in procs:
        finish(proc)
    dirs = sorted(tmp_path.glob("run*"))
    assert [d.name for d in dirs] == ["run", "run_1", "run_2", "run_3"]
    seeds = set()
    for d in dirs:
        saved = yaml.safe_load((d / "config.yaml").read_text())
        assert saved["run_dir"] == str(d)
        seeds.add(saved["seed"])
        rows = (d / "progress.csv").read_text().splitlines()
        assert rows[0].startswith("") and len(rows) >= 2 and all(r.count(",") == rows[0].count(",") for r in rows)
        assert (d / "last.ckpt").is_file() and (d / "final.json").is_file()
    assert seeds == {0, 1, 2, 3}  # each dir holds exactly one run's files


def test_two_multiruns_at_once_get_their_own_sweep_dirs_and_each_job_its_zoo(tmp_path: Path) -> None:
    sweep = tmp_path / "multi"
    words = ["-m", f"hydra.sweep.dir={sweep}", "env.id=CartPole-v1,CartPole-v0", *TINY]
    procs = [run([*words, f"seed={seed}"], cwd=tmp_path) for seed in (0, 1)]
    outs = [finish(proc) for proc in procs]
    assert sorted(p.name for p in tmp_path.glob("multi*")) == ["multi", "multi_1"]
    for out in outs:
        assert "zoo: configs/zoo/dqn/CartPole-v1.yaml applied" in out
        assert "zoo: none (no configs/zoo/dqn/CartPole-v0.yaml" in out
    seeds = set()
    for sweep_dir in (sweep, tmp_path / "multi_1"):
        cartpole = yaml.safe_load((sweep_dir / "0" / "config.yaml").read_text())
        untuned = yaml.safe_load((sweep_dir / "1" / "config.yaml").read_text())
        assert cartpole["zoo"] == "dqn/CartPole-v1" and cartpole["agent"]["lr"] == pytest.approx(2.3e-3)
        assert untuned["zoo"] is None and untuned["env"]["id"] == "CartPole-v0"
        assert untuned["agent"]["lr"] == pytest.approx(1e-4) and untuned["runner"]["schedule"]["train_freq"] == 4
        hydra_copy = yaml.safe_load((sweep_dir / "0" / ".hydra" / "config.yaml").read_text())
        assert hydra_copy["agent"]["lr"] == pytest.approx(2.3e-3)  # Hydra's own record agrees
        assert cartpole["seed"] == untuned["seed"]
        seeds.add(cartpole["seed"])
    assert seeds == {0, 1}


def test_offline_runs_get_no_online_zoo_schedule() -> None:
    """rl-zoo's DQN CartPole file sets 5e4 env steps, train_freq and learning_starts: on an offline run they would
    turn the update count and schedule into the online one (and stray keys would reach the offline schedule)."""
    from cardio.config import describe_zoo

    online = compose_train(["agent=dqn", "env=CartPole"])
    offline = compose_train(["agent=dqn", "env=CartPole", "runner=offline"])
    plain = OmegaConf.load(Path(CONFIG_DIR) / "runner" / "offline.yaml")
    assert online.zoo == "dqn/CartPole-v1"  # the control: the same pair online gets the file
    assert offline.zoo is None
    assert offline.runner.total_steps == plain.total_steps
    assert "train_freq" not in offline.runner.schedule
    assert "runner=offline" in describe_zoo(offline)
