"""SAC, TD3, DDPG, DRQN and the exploration helpers: maths, bounds, space checks, vector envs, recurrence."""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import open_dict

from cardio.agents import SpaceError
from cardio.agents.ddpg import DDPGConfig
from cardio.agents.drqn import DRQNConfig
from cardio.agents.heads import SquashedGaussianHead, from_env_bounds, to_env_bounds
from cardio.agents.noise import GaussianNoise, OrnsteinUhlenbeckNoise, epsilon_greedy, make_action_noise
from cardio.agents.sac import SACConfig
from cardio.agents.td3 import TD3Config
from cardio.buffers import CircularBuffer, SequenceBuffer
from cardio.build import build_agent, build_env, build_runner
from cardio.envs import make_env
from cardio.envs.wrappers import MaskVelocity
from cardio.runner import OffPolicySchedule, Runner
from tests.conftest import compose_train, shrink

OBS3 = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
ASYMMETRIC = gym.spaces.Box(np.array([0.0, -5.0], np.float32), np.array([3.0, -1.0], np.float32))
CONTINUOUS = {"SAC": SACConfig(hidden_sizes=(16,)), "TD3": TD3Config(hidden_sizes=(16,)), "DDPG": DDPGConfig()}


# ------------------------------------------------------------------------------------------- heads and noise
def test_squashed_gaussian_log_prob_matches_the_tanh_transformed_density() -> None:
    torch.manual_seed(0)
    head = SquashedGaussianHead(4, 2)
    features = torch.randn(512, 4) * 3  # wide means: many actions close to +-1
    action, log_prob = head(features)
    mean, log_std = head.mean(features), head.log_std(features).clamp(-20, 2)
    base = torch.distributions.Normal(mean, log_std.exp())
    reference = torch.distributions.TransformedDistribution(base, [torch.distributions.TanhTransform(cache_size=1)])
    u = torch.atanh(action.clamp(-1 + 1e-6, 1 - 1e-6))
    expected = reference.log_prob(torch.tanh(u)).sum(-1)
    close = action.abs().max(-1).values < 0.999  # atanh is ill-conditioned at the edges
    torch.testing.assert_close(log_prob[close], expected[close], atol=2e-3, rtol=1e-3)
    assert action.abs().max() <= 1.0
    # negative control: the Gaussian log-density without the tanh correction is far off
    assert (base.log_prob(u).sum(-1)[close] - expected[close]).abs().mean() > 0.1


def test_action_bounds_round_trip_on_an_asymmetric_box() -> None:
    low, high = torch.tensor(ASYMMETRIC.low), torch.tensor(ASYMMETRIC.high)
    unit = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]])
    env_action = to_env_bounds(unit, low, high)
    torch.testing.assert_close(env_action, torch.tensor([[0.0, -5.0], [3.0, -1.0], [1.5, -3.0]]))
    torch.testing.assert_close(from_env_bounds(env_action, low, high), unit)


def test_gaussian_noise_has_the_asked_std_and_ou_noise_is_correlated_and_resets() -> None:
    rng = np.random.default_rng(0)
    assert GaussianNoise(2, 0.3, rng)(20_000).std() == pytest.approx(0.3, rel=0.03)
    ou = OrnsteinUhlenbeckNoise(1, 0.3, rng)
    path = np.array([ou(2)[:, 0] for _ in range(2_000)])  # [T, N]
    lag1 = np.corrcoef(path[:-1, 0], path[1:, 0])[0, 1]
    assert lag1 > 0.9  # consecutive OU values are strongly correlated
    ou.reset(np.array([True, False]))
    assert ou.x[0, 0] == 0.0 and ou.x[1, 0] != 0.0
    with pytest.raises(ValueError, match=r"agent\.noise_type"):
        make_action_noise("pink", 1, 0.1, rng)


def test_epsilon_greedy_mixes_uniform_and_greedy_rows() -> None:
    rng = np.random.default_rng(0)
    actions = epsilon_greedy(lambda: np.full(40_000, 2), 40_000, 4, 0.4, rng)
    # greedy 2 with prob 0.6 + 0.4/4 uniform; every other action 0.4/4
    np.testing.assert_allclose(np.bincount(actions, minlength=4) / 40_000, [0.1, 0.1, 0.7, 0.1], atol=0.01)
    calls = []
    epsilon_greedy(lambda: calls.append(1) or np.zeros(8, np.int64), 8, 4, 1.0, rng)
    assert not calls  # all rows explore: no forward pass


# ------------------------------------------------------------------------------------------- continuous agents
@pytest.mark.parametrize("name", CONTINUOUS)
def test_actions_lie_in_the_env_bounds(name: str) -> None:
    agent = CONTINUOUS[name].build(OBS3, ASYMMETRIC, seed=0)
    obs = np.random.default_rng(0).normal(size=(256, 3)).astype(np.float32) * 10
    for explore in (True, False):
        action, _ = agent.act(obs, explore)
        assert action.shape == (256, 2)
        assert (action >= ASYMMETRIC.low).all() and (action <= ASYMMETRIC.high).all()


@pytest.mark.parametrize("name", CONTINUOUS)
def test_update_reports_the_documented_metrics(name: str) -> None:
    agent = CONTINUOUS[name].build(OBS3, ASYMMETRIC, seed=0)
    rng = np.random.default_rng(0)
    batch = {
        "obs": rng.normal(size=(32, 3)).astype(np.float32),
        "next_obs": rng.normal(size=(32, 3)).astype(np.float32),
        "action": agent.act(rng.normal(size=(32, 3)).astype(np.float32), True)[0],
        "reward": rng.normal(size=32).astype(np.float32),
        "terminated": rng.random(32) < 0.1,
        "weight": np.ones(32, np.float32),
    }
    first, second = agent.update(batch), agent.update(batch)
    assert {"train/critic_loss", "train/q_mean"} <= first.keys() and first["td_error"].shape == (32,)
    if name == "SAC":
        assert {"train/actor_loss", "train/ent_coef", "train/ent_coef_loss", "train/entropy"} <= first.keys()
    elif name == "TD3":  # policy_delay=2: the actor steps on every second update only
        assert "train/actor_loss" not in first and "train/actor_loss" in second
    else:  # DDPG: one critic, the actor steps every update
        assert "train/actor_loss" in first and len(agent.critics) == 1


def test_sac_entropy_coefficient_falls_when_entropy_exceeds_the_target() -> None:
    agent = SACConfig(hidden_sizes=(16,), target_entropy=-10.0).build(OBS3, ASYMMETRIC)
    batch = {k: v[:16] for k, v in random_batch().items()}
    alphas = [agent.update(batch)["train/ent_coef"] for _ in range(20)]
    assert alphas[-1] < alphas[0]
    fixed = SACConfig(hidden_sizes=(16,), ent_coef=0.2).build(OBS3, ASYMMETRIC)
    assert fixed.update(batch)["train/ent_coef"] == pytest.approx(0.2) and fixed.alpha_optimizer is None


def random_batch() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "obs": rng.normal(size=(64, 3)).astype(np.float32),
        "next_obs": rng.normal(size=(64, 3)).astype(np.float32),
        "action": rng.uniform(ASYMMETRIC.low, ASYMMETRIC.high, size=(64, 2)).astype(np.float32),
        "reward": rng.normal(size=64).astype(np.float32),
        "terminated": np.zeros(64, bool),
    }


@pytest.mark.parametrize(
    ("agent", "env", "space"),
    [("sac", "CartPole", "Discrete"), ("td3", "CartPole", "Discrete"), ("ddpg", "Acrobot", "Discrete"),
     ("dqn", "Pendulum", "Box"), ("drqn", "Pendulum", "Box")],
)  # fmt: skip
def test_impossible_agent_env_pairs_name_agent_env_and_space(agent: str, env: str, space: str) -> None:
    cfg = compose_train([f"agent={agent}", f"env={env}"])
    with pytest.raises(SpaceError, match=rf"{agent.upper()} needs .* env '{cfg.env.id}' has action space {space}"):
        build_agent(cfg, build_env(cfg))


@pytest.mark.parametrize("agent", ["dqn", "sac", "td3"])
def test_off_policy_agents_run_on_four_envs_counting_env_steps(agent: str, tmp_path: Path) -> None:
    env = "CartPole" if agent == "dqn" else "Pendulum"
    cfg = shrink(compose_train([f"agent={agent}", f"env={env}", "env.num_envs=4"]), tmp_path, total_steps=96)
    with open_dict(cfg):
        cfg.runner.schedule.update(learning_starts=32, train_freq=2, gradient_steps=1, batch_size=16)
        cfg.runner.eval_episodes = 1
        cfg.agent.hidden_sizes = [16]
    runner = build_runner(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner.run()
    # 8 env steps per runner.step() (2 vector steps x 4 envs); updates start once past 32 env steps
    assert runner.env_steps == 96 and runner.updates == (96 - 32) // 8
    assert np.isfinite(runner.last_eval["eval/mean_reward"])


@pytest.mark.parametrize("config", [TD3Config(hidden_sizes=(16,)), DDPGConfig(hidden_sizes=(16,))], ids=["TD3", "DDPG"])
def test_ou_noise_restarts_when_an_episode_ends(config) -> None:
    """Pendulum truncates at 200 steps: the OU process has drifted by then, and the runner's episode-end hook
    must put it back at mu before the next episode's first action."""
    config.noise_type = "ou"
    env = make_env("Pendulum-v1", num_envs=2)
    agent = config.build(env.single_observation_space, env.single_action_space, seed=0, env_id="Pendulum-v1")
    schedule = OffPolicySchedule(learning_starts=2, batch_size=2, train_freq=1, gradient_steps=1)
    runner = Runner(env, agent, CircularBuffer(512, num_envs=2), schedule, total_steps=500, seed=0)
    drift = []
    while runner.env_steps < 2 * 200:  # 2 envs: the episodes end on vector step 200
        runner.step()
        drift.append(np.abs(agent.noise.x).max(initial=0.0))
    assert min(drift[50:-1]) > 0.0  # running: mid-episode the process is away from mu
    np.testing.assert_array_equal(agent.noise.x, 0.0)  # restarted at the episode end, both envs


# ------------------------------------------------------------------------------------------- DRQN and masking
def test_mask_velocity_keeps_positions_and_names_unknown_envs() -> None:
    env = MaskVelocity(gym.make("CartPole-v1"))
    obs, _ = env.reset(seed=0)
    full, _ = gym.make("CartPole-v1").reset(seed=0)
    np.testing.assert_array_equal(obs, full[[0, 2]])
    assert env.observation_space.shape == (2,)
    with pytest.raises(ValueError, match=r"no velocity entries for env 'Taxi-v4' .* pass keep="):
        MaskVelocity(gym.make("Taxi-v4"))
    with pytest.raises(ValueError, match=r"keep=\[0, 9\] is out of range for env 'CartPole-v1'"):
        MaskVelocity(gym.make("CartPole-v1"), keep=[0, 9])


def drqn_runner(burn_in: int = 2, seq_len: int = 4) -> Runner:
    env = make_env("CartPole-v1", num_envs=2, wrappers=[MaskVelocity], seed=0)
    agent = DRQNConfig(hidden_sizes=(16,), gru_size=8, burn_in=burn_in).build(
        env.single_observation_space, env.single_action_space, seed=0
    )
    buffer = SequenceBuffer(400, num_envs=2, seed=0, seq_len=seq_len, burn_in=burn_in)
    schedule = OffPolicySchedule(learning_starts=32, train_freq=4, gradient_steps=2, batch_size=8)
    eval_env = make_env("CartPole-v1", wrappers=[MaskVelocity])
    # seeded: unseeded resets made the episode ends (and so the final policy_state) differ run to run
    return Runner(env, agent, buffer, schedule, total_steps=96, eval_env=eval_env, seed=0)


def test_drqn_learns_from_sequence_windows_and_acts_with_its_state() -> None:
    runner = drqn_runner()
    runner.run()
    assert runner.updates == 2 * ((96 - 32) // 8) and np.isfinite(runner.last_eval["eval/mean_reward"])
    assert runner.policy_state.shape == (2, 8) and np.abs(runner.policy_state).sum() > 0
    batch, _ = runner.buffer.sample(8)
    assert batch["obs"].shape == (8, 6, 2) and batch["mask"].shape == (8, 6)


def test_drqn_loss_ignores_burn_in_and_masked_steps() -> None:
    agent = drqn_runner().agent
    rng = np.random.default_rng(0)
    batch = {
        "obs": rng.normal(size=(4, 6, 2)).astype(np.float32),
        "next_obs": rng.normal(size=(4, 6, 2)).astype(np.float32),
        "action": rng.integers(0, 2, size=(4, 6)),
        "reward": np.ones((4, 6), np.float32),
        "terminated": np.zeros((4, 6), bool),
        "mask": np.ones((4, 6), bool),
    }
    base = agent.update(dict(batch))["train/loss"]
    garbage = dict(batch, reward=batch["reward"].copy(), mask=batch["mask"].copy())
    garbage["reward"][:, :2] = 1e6  # burn-in steps (burn_in=2) carry no loss
    garbage["reward"][:, 4:] = 1e6
    garbage["mask"][:, 4:] = False  # masked steps carry no loss either
    torch.manual_seed(0)
    agent2 = drqn_runner().agent
    agent2.load_state_dict(agent.state_dict())
    assert agent2.update(garbage)["train/loss"] < 1e3
    # negative control: unmasked garbage dominates the loss
    assert agent2.update(dict(garbage, mask=np.ones((4, 6), bool)))["train/loss"] > 1e4
    assert np.isfinite(base)
