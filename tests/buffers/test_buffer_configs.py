"""Every configs/buffer option composes and builds; the off-policy ones drive a short DQN run unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardio.buffers import CircularBuffer, PrioritizedBuffer, SequenceBuffer
from cardio.build import build_buffer, build_runner
from tests.conftest import compose_train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
OPTIONS = sorted(p.stem for p in (CONFIGS / "buffer").glob("*.yaml"))


def cfg_for(option: str, *extra: str):  # type: ignore[no-untyped-def]
    return compose_train(
        [
            f"buffer={option}",
            "buffer.capacity=2000",
            "env.num_envs=2",
            "runner.total_steps=240",
            "runner.schedule.learning_starts=64",
            "runner.schedule.train_freq=4",
            "runner.schedule.gradient_steps=1",
            "runner.schedule.batch_size=32",
            "runner.eval_freq=0",
            "runner.eval_episodes=1",
            "runner.log_interval=10000",
            "logger=console",
            *extra,
        ]
    )


def test_every_option_is_tested() -> None:
    assert set(OPTIONS) == {"circular", "nstep", "prioritized", "sequence"}


@pytest.mark.parametrize("option", OPTIONS)
def test_option_builds(option: str) -> None:
    import gymnasium as gym

    cfg = cfg_for(option)
    env = gym.make_vec("CartPole-v1", num_envs=2)
    buffer = build_buffer(cfg, env)
    want = {"circular": CircularBuffer, "nstep": CircularBuffer, "prioritized": PrioritizedBuffer}
    assert isinstance(buffer, want.get(option, SequenceBuffer))
    if option == "nstep":
        assert buffer.n_step == 3 and buffer.gamma == cfg.agent.gamma


@pytest.mark.parametrize(
    "overrides",
    [["buffer=nstep"], ["buffer=prioritized", "buffer.n_step=3"], ["buffer=circular", "buffer.memory_saving=true"]],
    ids=["nstep", "prioritized_nstep", "memory_saving"],
)
def test_dqn_runs_on_option(overrides: list[str], tmp_path: Path) -> None:
    cfg = cfg_for(overrides[0].split("=")[1], *overrides[1:], f"run_dir={tmp_path}")
    runner = build_runner(cfg)
    runner.run()
    assert runner.updates > 0 and len(runner.buffer) == 240
    if isinstance(runner.buffer, PrioritizedBuffer):
        assert runner.buffer.beta == pytest.approx(1.0, abs=0.02)  # annealed over the run
        assert runner.buffer.max_priority != 1.0  # td errors came back
