"""Atari through ale-py (cardio/envs/atari.py, configs/env/atari.yaml): the preprocessing, the training-only
wrappers left out of evaluation, the game score reported unclipped over whole games, memory-saving replay that
keeps the true next stacked frames at life losses and game ends, and short DQN and PPO runs of the real command.
Every env here is a real ALE game; runs are tiny (2-core machine)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from cardio.buffers.circular import CircularBuffer
from cardio.envs.atari import EpisodicLife, atari_preprocessing, clip_reward
from cardio.envs.factory import ENV_EPISODE_KEY
from cardio.envs.single import OneEnvVector
from cardio.errors import ConfigError
from cardio.gatherer import Gatherer
from tests.conftest import compose_train

ROOT = Path(__file__).resolve().parents[1]
FRAMES = (4, 84, 84)


def test_ale_py_is_imported_only_for_atari_and_its_absence_names_the_extra() -> None:
    """In a fresh process: a CartPole env, the gatherer and the config never import ale-py; an Atari id without
    ale-py (hidden here) fails with one line naming the extra."""
    script = (
        "import sys\n"
        "from cardio.build import build_env\n"
        "from cardio.config import compose_train\n"
        "cfg = compose_train(overrides=['env=CartPole'])\n"
        "build_env(cfg).close()\n"
        "assert 'ale_py' not in sys.modules, 'ale_py imported by a CartPole run'\n"
        "sys.modules['ale_py'] = None  # as if not installed\n"
        "from cardio.envs.factory import check_env_id\n"
        "try:\n"
        "    check_env_id('PongNoFrameskip-v4')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ConfigError env.id='PongNoFrameskip-v4'"), done.stdout
    assert "pip install 'cardio-template[atari]'" in done.stdout


@pytest.mark.parametrize(("obs", "saving"), [(np.zeros((1, *FRAMES), np.uint8), True), (np.zeros((1, 4)), False)])
def test_memory_saving_auto_is_on_for_frames_only(obs: np.ndarray, saving: bool) -> None:
    from cardio.buffers.circular import BufferError, resolve_memory_saving

    batch = {"obs": obs, "next_obs": obs, "action": np.zeros(1, np.int64), "reward": np.zeros(1, np.float32)}
    batch |= {"terminated": np.zeros(1, bool), "truncated": np.zeros(1, bool)}
    buffer = CircularBuffer(4, memory_saving="auto")
    buffer.add(batch)
    assert buffer.memory_saving is saving and ("next_obs" in buffer.storage) is not saving
    restored = CircularBuffer(4, memory_saving="auto")
    restored.load_state_dict(buffer.state_dict())  # a resumed run keeps the saved buffer's choice
    assert restored.memory_saving is saving
    np.testing.assert_array_equal(restored.get(np.array([0]))["next_obs"][0], obs[0])
    space = gym.spaces.Box(0, 255, obs.shape[1:], obs.dtype)
    assert resolve_memory_saving("auto", space, on_policy=False) is saving
    assert resolve_memory_saving("auto", space, on_policy=True) is False  # rollouts are read whole
    with pytest.raises(BufferError, match=r"buffer\.memory_saving must be true, false or 'auto', got 'yes'"):
        CircularBuffer(4, memory_saving="yes")  # type: ignore[arg-type]


def test_rmsprop_tf_like_is_tensorflows_rmsprop() -> None:
    """One step by hand: v = alpha * 1 + (1 - alpha) g^2, p -= lr g / sqrt(v + eps); torch's RMSprop (v from 0,
    eps outside the root) takes another step (negative control), and rl-zoo's A2C policy_kwargs select it."""
    import torch

    from cardio.agents.networks import RMSpropTFLike
    from scripts.import_zoo import translate

    def one_step(optimizer_class: type[torch.optim.Optimizer]) -> float:
        p = torch.nn.Parameter(torch.tensor([1.0]))
        p.grad = torch.tensor([0.5])
        optimizer_class([p], lr=0.1, alpha=0.9, eps=1e-2).step()
        return float(p.detach())

    v = 0.9 * 1.0 + 0.1 * 0.5**2
    assert one_step(RMSpropTFLike) == pytest.approx(1.0 - 0.1 * 0.5 / np.sqrt(v + 1e-2))
    assert one_step(torch.optim.RMSprop) != pytest.approx(one_step(RMSpropTFLike), abs=1e-3)
    kwargs = "dict(optimizer_class=RMSpropTFLike, optimizer_kwargs=dict(eps=1e-5))"
    settings = translate("a2c", {"policy_kwargs": kwargs})
    assert settings["agent.rms_prop_tf_like"] is True and settings["agent.rms_prop_eps"] == 1e-5


pytest.importorskip("ale_py")


def chain(env: gym.Env) -> list[str]:
    """Wrapper class names from the outside in."""
    names = []
    while isinstance(env, gym.Wrapper):
        names.append(type(env).__name__)
        env = env.env
    return names


def test_training_env_clips_and_ends_at_life_loss_but_the_eval_env_does_not() -> None:
    from cardio.build import build_env

    cfg = compose_train(["env=Breakout"])
    train, evaluation = build_env(cfg), build_env(cfg, evaluation=True)
    for env in (train, evaluation):
        assert env.single_observation_space == gym.spaces.Box(0, 255, FRAMES, np.uint8)
        assert env.envs[0].unwrapped._frameskip == 1  # type: ignore[attr-defined]  # the wrapper skips
    inner = ["FrameStackObservation", "FireReset", "AtariPreprocessing", "RecordEpisodeStatistics"]
    assert chain(train.envs[0])[:6] == ["TransformReward", "EpisodicLife", *inner]
    assert chain(evaluation.envs[0])[:4] == inner  # no clipping, no life-loss episodes
    train.close()
    evaluation.close()


def test_an_env_that_skips_frames_itself_is_refused_naming_the_key() -> None:
    from cardio.envs import make_env

    with pytest.raises(ConfigError, match=r"frameskip=4\).*env\.kwargs\.frameskip=1"):
        make_env("ALE/Pong-v5", wrappers=["cardio.envs.atari.atari_preprocessing"])
    env = make_env("ALE/Pong-v5", kwargs={"frameskip": 1}, wrappers=["cardio.envs.atari.atari_preprocessing"])
    assert env.single_observation_space.shape == FRAMES
    env.close()


class RawRewards(gym.Wrapper):
    """Test probe right on the ALE env: every raw reward, one list per game (a game starts at each real reset)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.games: list[list[float]] = []

    def reset(self, **kwargs: Any) -> Any:
        self.games.append([])
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        out = self.env.step(action)
        self.games[-1].append(float(out[1]))
        return out


@pytest.fixture(scope="module")
def space_invaders() -> dict[str, Any]:
    """A random-policy rollout of SpaceInvaders (aliens pay 5 to 30, 3 lives) through the training stack, with
    the raw rewards probed under it, stored in a memory-saving buffer as the runner stores it."""
    probe: list[RawRewards] = []

    def make_one() -> gym.Env:
        env = RawRewards(gym.make("SpaceInvadersNoFrameskip-v4"))
        probe.append(env)
        env = gym.wrappers.RecordEpisodeStatistics(env, stats_key=ENV_EPISODE_KEY)
        return clip_reward(EpisodicLife(atari_preprocessing(env)))

    gym.register_envs(__import__("ale_py"))
    gatherer = Gatherer(OneEnvVector(make_one, autoreset_mode=AutoresetMode.SAME_STEP), seed=0)
    gatherer.env.action_space.seed(0)
    reported: list[float] = []
    gatherer.on_episode = lambda env, ret, length: reported.append(ret)
    buffer = CircularBuffer(700, num_envs=1, seed=0, memory_saving=True)
    steps: list[dict[str, Any]] = []
    while len(reported) < 2 and len(steps) < 4000:
        transition, valid = gatherer.step(gatherer.random_policy)
        buffer.add(transition, mask=valid)
        steps.append({k: np.array(v) for k, v in transition.items()})
    return {"reported": reported, "games": probe[0].games, "steps": steps, "buffer": buffer}


def test_reported_return_is_the_unclipped_score_of_whole_games(space_invaders: dict[str, Any]) -> None:
    reported, games, steps = space_invaders["reported"], space_invaders["games"], space_invaders["steps"]
    assert len(reported) >= 2, "no two whole games in the rollout"
    raw_scores = [sum(game) for game in games[: len(reported)]]
    assert reported == raw_scores  # the game score, each reward as the game paid it
    rewards = np.concatenate([s["reward"] for s in steps])
    assert set(np.unique(rewards)) <= {-1.0, 0.0, 1.0}  # training rewards are clipped
    # negative control: clipped sums per game would be the number of aliens hit, 5 to 30 times smaller
    assert sum(reported) >= 5 * rewards.sum() > 0
    # a lost life ends a learning episode (terminated) but not a game: 3 lives, so more terminations than games
    terminated = int(sum(s["terminated"][0] for s in steps))
    assert terminated >= 3 * len(reported) > len(reported)


def test_memory_saving_replay_returns_the_true_next_frames_at_life_losses(space_invaders: dict[str, Any]) -> None:
    steps, buffer = space_invaders["steps"], space_invaders["buffer"]
    assert buffer.memory_saving and "next_obs" not in buffer.storage
    assert buffer.storage["obs"].dtype == np.uint8 and buffer.storage["obs"].shape[1:] == (1, *FRAMES)
    kept = steps[-buffer.capacity :]  # the buffer wrapped: it holds the newest `capacity` transitions, in order
    rows = (np.arange(len(steps) - len(kept), len(steps)) % buffer.capacity)[: buffer.capacity]
    got = buffer.get(rows)
    truth = np.stack([s["next_obs"][0] for s in kept])
    assert got["next_obs"].dtype == np.uint8
    np.testing.assert_array_equal(got["next_obs"], truth)
    np.testing.assert_array_equal(got["obs"], np.stack([s["obs"][0] for s in kept]))
    ends = [i for i, s in enumerate(kept[:-1]) if s["terminated"][0] or s["truncated"][0]]
    assert len(ends) >= 2, "no life lost inside the buffer"
    for i in ends:  # negative control: the obs after an end is the next life's start, not the final frames
        assert not np.array_equal(truth[i], kept[i + 1]["obs"][0])


def test_bytes_per_transition_halve_and_the_memory_check_counts_them(space_invaders: dict[str, Any]) -> None:
    from cardio.validate import check_memory

    steps = space_invaders["steps"][:300]
    plain, saving = CircularBuffer(300, seed=0), CircularBuffer(300, seed=0, memory_saving=True)
    for s in steps:
        plain.add(s)
        saving.add(s)
    per_plain, per_saving = plain.nbytes / 300, saving.nbytes / 300
    obs = int(np.prod(FRAMES))  # 28224 bytes, uint8
    print(f"bytes per transition: {per_plain:.0f} storing next_obs, {per_saving:.0f} memory_saving")
    assert per_plain == pytest.approx(2 * obs + 8 + 4 + 2, abs=1)  # obs, next_obs, int64 action, reward, 2 flags
    # obs once, an int64 slot map, and the pool of final frames (one per life lost in the buffer)
    assert obs + 22 <= per_saving < 1.1 * (obs + 22)
    space = gym.spaces.Box(0, 255, FRAMES, np.uint8)
    for memory_saving, per in (("auto", per_saving), (False, per_plain)):
        plain_cfg = {"env": {"id": "SpaceInvadersNoFrameskip-v4"}}
        plain_cfg["buffer"] = {"capacity": 100_000, "memory_saving": memory_saving}
        estimate = check_memory(plain_cfg, space, gym.spaces.Discrete(6), available=10**15) / 100_000
        assert estimate == pytest.approx(per, rel=0.1)
    rl_zoo = {"env": {"id": "x"}, "buffer": {"capacity": 100_000, "memory_saving": "auto"}}  # rl-zoo's 1e5
    with pytest.raises(ConfigError, match="28254 bytes per transition"):
        check_memory(rl_zoo, space, gym.spaces.Discrete(6), available=2**30)


def train(run_dir: Path, *overrides: str) -> None:
    """The real training command; evaluation games are cut at 2000 frames (an untrained greedy agent may never
    press FIRE again after losing a life)."""
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), f"hydra.run.dir={run_dir}", "logger=csv"]
    cmd += ["runner.eval_freq=0", "runner.eval_episodes=1", "+env.kwargs.max_num_frames_per_episode=2000"]
    done = subprocess.run([*cmd, *overrides], cwd=run_dir.parent, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_dqn_trains_on_breakout_with_rl_zoo_numbers_frames_once_and_whole_game_scores(tmp_path: Path) -> None:
    import csv

    from omegaconf import OmegaConf

    from cardio import checkpoint

    run_dir = tmp_path / "dqn"
    train(
        run_dir,
        "agent=dqn",
        "env=Breakout",
        "runner.total_steps=1000",
        "runner.schedule.learning_starts=500",
        "buffer.capacity=1000",
    )
    cfg = OmegaConf.load(run_dir / "config.yaml")
    assert cfg.zoo == "dqn/atari" and cfg.agent.target_update_interval == 1000 and cfg.buffer.memory_saving == "auto"
    state = checkpoint.load(run_dir / "last.ckpt", "cardio.runner")
    buffer = state["buffer"]
    storage = buffer["storage"]
    assert buffer["memory_saving"] and "next_obs" not in storage  # each stacked frame stored once
    assert storage["obs"].shape == (1000, 1, *FRAMES) and storage["obs"].dtype == np.uint8
    assert storage["action"].dtype == np.int64 and storage["reward"].dtype == np.float32
    assert set(np.unique(storage["reward"])) <= {0.0, 1.0}  # Breakout's 1/4/7 bricks, clipped
    assert state["updates"] > 0
    with (run_dir / "monitor.csv").open() as f:
        games = list(csv.DictReader(line for line in f if not line.startswith("#")))
    assert games, "no whole game in 1000 steps"
    assert len(games) < int(storage["terminated"].sum())  # 5 lives a game: life losses are no episodes
    # a game lasts frames, noop resets included: 4 per agent step, so far more than Breakout's steps per life
    assert all(int(g["l"]) > 100 and float(g["r"]) >= 0 for g in games)


def test_a_copied_breakout_run_resumes_with_the_same_words_and_cuts_its_unfinished_game(tmp_path: Path) -> None:
    """The ALE's state does not pickle, so a resume resets the game. The stored episode must end at the cut
    (truncated), or the memory-saving replay refuses the new game's first frames (it did: BufferError) and
    n-step returns would read across. The command line is the first run's, ``runner.total_steps`` raised
    (``agent=dqn env=Breakout`` must read as the zoo-tuned agent it saved), from a copy of the run dir (its
    checkpoints land in the copy, never in the original)."""
    import shutil

    from cardio import checkpoint

    words = ["agent=dqn", "env=Breakout", "runner.schedule.learning_starts=500", "buffer.capacity=1000"]
    first, copy = tmp_path / "first", tmp_path / "copy"
    train(first, *words, "runner.total_steps=600")
    shutil.copytree(first, copy)
    original = (first / "last.ckpt").read_bytes()
    train(tmp_path / "hydra", *words, f"resume={copy}", "runner.total_steps=800")
    assert (first / "last.ckpt").read_bytes() == original
    state = checkpoint.load(copy / "last.ckpt", "cardio.runner")
    assert state["gatherer"]["stats"].env_steps == 800
    storage = state["buffer"]["storage"]
    assert storage["truncated"][599, 0] and not storage["terminated"][599, 0]  # the game cut at the resume
    assert state["buffer"]["final"][599] >= 0  # its true next frames kept in the pool, not the new game's


def test_ppo_trains_on_breakout_with_one_shared_nature_cnn(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from cardio import checkpoint
    from cardio.agents.networks import NatureCNN
    from cardio.build import build_agent, build_env

    run_dir = tmp_path / "ppo"
    train(
        run_dir,
        "agent=ppo",
        "env=Breakout",
        "env.num_envs=2",
        "runner.schedule.n_steps=32",
        "agent.batch_size=32",
        "agent.n_epochs=1",
        "runner.total_steps=128",
    )
    cfg = OmegaConf.load(run_dir / "config.yaml")
    assert cfg.zoo == "ppo/atari" and cfg.agent.share_torso and cfg.agent.clip_range_schedule == "linear"
    assert len(cfg.env.train_wrappers) == 2
    assert checkpoint.load(run_dir / "last.ckpt", "cardio.runner")["total_steps"] == 128
    assert (run_dir / "final.json").exists()
    # the network that config builds: one Nature-CNN read by both heads, as SB3's CnnPolicy
    env = build_env(cfg)
    net = build_agent(cfg, env).net  # type: ignore[attr-defined]
    env.close()
    assert isinstance(net.pi_torso, NatureCNN) and net.vf_torso is net.pi_torso


def test_rl_zoo_atari_block_applies_to_every_atari_id_without_a_file_of_its_own() -> None:
    assert compose_train(["agent=dqn", "env=Breakout"]).zoo == "dqn/atari"
    seaquest = compose_train(["agent=ppo", "env=atari", "env.id=SeaquestNoFrameskip-v4"])
    assert seaquest.zoo == "ppo/atari" and seaquest.env.num_envs == 8
    assert compose_train(["agent=dqn", "env=atari", "env.id=ALE/Pong-v5"]).zoo == "dqn/atari"
    pong = compose_train(["agent=a2c", "env=Pong"])
    assert pong.zoo == "a2c/atari" and pong.agent.rms_prop_tf_like and pong.env.num_envs == 16
    assert compose_train(["agent=dqn", "env=CartPole"]).zoo == "dqn/CartPole-v1"  # ids with a file keep theirs
