"""PPO, A2C and their parts: heads, torsos, spaces, configs, persistence, Box-action clipping."""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

from cardio.agents.a2c import A2CConfig
from cardio.agents.base import SpaceError
from cardio.agents.heads import Categorical, CategoricalHead, DiagGaussianHead, policy_head
from cardio.agents.networks import MLPTorso, NatureCNN, make_torso
from cardio.agents.ppo import PPOConfig
from cardio.buffers import CircularBuffer
from cardio.build import build_runner
from cardio.envs import make_env
from cardio.runner import OnPolicySchedule, Runner
from tests.conftest import CONFIG_DIR, compose_train

torch.set_num_threads(1)

CONFIGS = {"ppo": PPOConfig, "a2c": A2CConfig}
BOX = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
DISCRETE = gym.spaces.Discrete(4)


# ------------------------------------------------------------------------------------------------ heads
def test_categorical_head_matches_torch_distribution() -> None:
    head, features = CategoricalHead(5, 4), torch.randn(6, 5)
    dist, reference = head(features), torch.distributions.Categorical(logits=head.linear(features))
    action = reference.sample()
    torch.testing.assert_close(dist.log_prob(action), reference.log_prob(action))
    torch.testing.assert_close(dist.entropy(), reference.entropy())
    assert torch.equal(dist.mode(), reference.probs.argmax(-1))
    assert dist.sample().shape == (6,) and dist.sample().dtype == torch.long


def test_categorical_samples_follow_the_probabilities() -> None:
    """Gumbel-max sampling: frequencies over 100k draws within 0.01 of softmax(logits)."""
    torch.manual_seed(0)
    logits = torch.tensor([0.0, 1.0, 2.0])
    draws = Categorical(logits.expand(100_000, 3)).sample()
    frequencies = torch.bincount(draws, minlength=3) / len(draws)
    torch.testing.assert_close(frequencies, torch.softmax(logits, 0), atol=0.01, rtol=0)


def test_diag_gaussian_head_matches_torch_distribution() -> None:
    head = DiagGaussianHead(5, 3, log_std_init=-0.5)
    features = torch.randn(6, 5)
    dist = head(features)
    reference = torch.distributions.Normal(head.linear(features), math.exp(-0.5))
    action = reference.sample()
    torch.testing.assert_close(dist.log_prob(action), reference.log_prob(action).sum(-1))
    torch.testing.assert_close(dist.entropy(), reference.entropy().sum(-1))
    assert torch.equal(dist.mode(), head.linear(features)) and dist.sample().shape == (6, 3)


def test_policy_head_refuses_other_spaces() -> None:
    with pytest.raises(TypeError, match="MultiBinary"):
        policy_head(4, gym.spaces.MultiBinary(3))


# ------------------------------------------------------------------------------------------------ torsos
def test_nature_cnn_reads_stacked_frames() -> None:
    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    torso = make_torso(space, hidden_sizes=(64,))
    assert isinstance(torso, NatureCNN) and torso.features_dim == 512
    assert torso(torch.zeros(2, 4, 84, 84, dtype=torch.uint8)).shape == (2, 512)


def test_mlp_torso_one_hot_encodes_discrete_observations() -> None:
    torso = make_torso(gym.spaces.Discrete(5), hidden_sizes=())
    assert isinstance(torso, MLPTorso) and torso.features_dim == 5
    assert torch.equal(torso(torch.tensor([0, 3])), torch.eye(5)[[0, 3]])


def test_nature_cnn_refuses_flat_observations() -> None:
    with pytest.raises(TypeError, match="uint8"):
        NatureCNN(BOX)


# ------------------------------------------------------------------------------------------------ agents
@pytest.mark.parametrize("name", CONFIGS)
def test_config_keys_match_the_yaml_in_order(name: str) -> None:
    """Style rule 1: the dataclass and ``configs/agent/<name>.yaml`` list the same knobs in the same order."""
    yaml_keys = list(yaml.safe_load((Path(CONFIG_DIR) / "agent" / f"{name}.yaml").read_text())["agent"])
    assert yaml_keys[1:] == [f.name for f in dataclasses.fields(CONFIGS[name])]


@pytest.mark.parametrize("name", CONFIGS)
def test_impossible_action_space_names_agent_env_and_space(name: str) -> None:
    with pytest.raises(SpaceError, match=rf"{name.upper()}.*'MyEnv-v0'.*MultiBinary"):
        CONFIGS[name]().build(BOX, gym.spaces.MultiBinary(3), env_id="MyEnv-v0")


@pytest.mark.parametrize("name", CONFIGS)
def test_bad_schedule_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"agent\.lr_schedule"):
        CONFIGS[name](lr_schedule="cosine").build(BOX, DISCRETE)


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("action_space", [DISCRETE, BOX], ids=["Discrete", "Box"])
def test_act_shapes_extras_and_deterministic_mode(name: str, action_space: gym.Space) -> None:
    agent = CONFIGS[name]().build(BOX, action_space, seed=0)
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    action, extras = agent.act(obs, explore=True)
    assert action.shape == (5, *action_space.shape) and extras["log_prob"].shape == extras["value"].shape == (5,)
    assert all(action_space.contains(a) for a in action)
    greedy = [agent.act(obs, explore=False) for _ in range(2)]
    assert np.array_equal(greedy[0][0], greedy[1][0]) and greedy[0][1] == {}


def test_box_actions_are_clipped_for_the_env_but_logged_unclipped() -> None:
    """The env gets actions inside the Box; ``log_prob`` belongs to the unclipped sample kept as ``raw_action``."""
    agent = PPOConfig(log_std_init=1.0).build(BOX, BOX, seed=0)
    obs = np.zeros((256, 3), np.float32)
    action, extras = agent.act(obs, explore=True)
    assert np.abs(action).max() <= 1.0 < np.abs(extras["raw_action"]).max()
    log_prob, _, _ = agent.net.evaluate(torch.as_tensor(obs), torch.as_tensor(extras["raw_action"]))
    np.testing.assert_allclose(log_prob.detach().numpy(), extras["log_prob"], rtol=1e-5)


@pytest.mark.parametrize("name", CONFIGS)
def test_update_metrics_and_state_dict_round_trip(name: str) -> None:
    env = make_env("Pendulum-v1", num_envs=2, seed=0)
    config = CONFIGS[name](lr_schedule="linear")
    agent = config.build(env.single_observation_space, env.single_action_space, seed=0)
    runner = Runner(env, agent, CircularBuffer(64, 2), OnPolicySchedule(32), total_steps=128, seed=0)
    runner.step()
    metrics = runner.log_now()
    expected = {"train/loss", "train/value_loss", "train/entropy_loss", "train/explained_variance", "train/std"}
    assert expected <= set(metrics) and metrics["train/learning_rate"] < config.lr
    clone = config.build(env.single_observation_space, env.single_action_space, seed=1)
    clone.load_state_dict(agent.state_dict())
    obs = np.zeros((3, 3), np.float32)
    assert np.array_equal(clone.act(obs, explore=False)[0], agent.act(obs, explore=False)[0])


def test_ppo_linear_schedules_follow_env_steps() -> None:
    agent = PPOConfig(lr=1e-3, lr_schedule="linear", clip_range=0.2, clip_range_schedule="linear").build(BOX, DISCRETE)
    agent.on_progress(75, 100)
    assert agent._scheduled(1e-3, "linear") == pytest.approx(2.5e-4)
    assert agent._scheduled(0.2, "constant") == 0.2


def test_ppo_warns_when_minibatches_do_not_divide_the_rollout() -> None:
    env = make_env("CartPole-v1", num_envs=2, seed=0)
    agent = PPOConfig(batch_size=24, n_epochs=1).build(env.single_observation_space, env.single_action_space)
    runner = Runner(env, agent, CircularBuffer(32, 2), OnPolicySchedule(16), total_steps=32, seed=0)
    with pytest.warns(UserWarning, match=r"16\*2 = 32 .*agent.batch_size=24.*minibatch of 8"):
        runner.step()


@pytest.mark.parametrize("agent_name", ["ppo", "ppo_jax"])
def test_ppo_twins_stay_quiet_when_only_the_runs_last_rollout_is_cut_short(agent_name: str, tmp_path: Path) -> None:
    """rl-zoo's CartPole numbers: 8 x 32 = 256 per rollout, batch 256; a budget of 416 cuts the last rollout to 160
    transitions, one minibatch of the whole (cut) rollout: nothing to warn about, in either twin."""
    if agent_name == "ppo_jax":
        pytest.importorskip("jax")
    cfg = compose_train([f"agent={agent_name}", "env=CartPole", "zoo=ppo/CartPole-v1", "runner.total_steps=416",
                         "runner.eval_freq=0", "runner.eval_episodes=1", "runner.checkpoint_dir=null", "logger=csv",
                         f"run_dir={tmp_path}"])  # fmt: skip
    runner = build_runner(cfg)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # any warning fails the test
            runner.run()
    finally:
        runner.close()
        if runner.logger is not None:
            runner.logger.close()
    assert runner.env_steps == 416


def test_uneven_minibatches_is_one_check_for_both_twins() -> None:
    config = PPOConfig(batch_size=64)
    assert config.uneven_minibatches(32, 4) is None  # 128: two minibatches of 64
    assert config.uneven_minibatches(16, 2) is None  # 32: one minibatch of the whole rollout
    message = config.uneven_minibatches(20, 5)  # 100: 64 + a runt of 36
    assert message is not None and "20*5 = 100" in message and "minibatch of 36" in message


# ------------------------------------------------------------------------------------------------ configs
def test_make_train_ppo_cartpole_gets_the_zoo_numbers() -> None:
    """``make train agent=ppo env=CartPole``: on-policy runner, 8 envs and rl-zoo's hyperparameters."""
    cfg = compose_train(["agent=ppo", "env=CartPole"])
    assert cfg.runner.schedule._target_.endswith("OnPolicySchedule") and cfg.env.num_envs == 8
    assert (cfg.runner.schedule.n_steps, cfg.agent.batch_size, cfg.agent.n_epochs) == (32, 256, 20)
    assert (cfg.agent.gamma, cfg.agent.gae_lambda, cfg.agent.lr) == (0.98, 0.8, 1e-3)
    assert cfg.agent.lr_schedule == cfg.agent.clip_range_schedule == "linear" and cfg.runner.total_steps == 100_000


def test_a2c_cartpole_gets_the_zoo_numbers() -> None:
    cfg = compose_train(["agent=a2c", "env=CartPole"])
    assert cfg.env.num_envs == 8 and cfg.runner.schedule.n_steps == 5 and cfg.runner.total_steps == 500_000
    assert (cfg.agent.lr, cfg.agent.ent_coef, cfg.agent.use_rms_prop) == (7e-4, 0.0, True)
