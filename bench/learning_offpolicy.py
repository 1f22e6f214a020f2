"""Multi-seed learning table for the off-policy and recurrent agents (issue 5, "Must show").

Each case composes ``configs/train.yaml`` with its overrides (the rl-zoo file for the pair applies itself), trains
one seed at a time, evaluates every ``eval_freq`` env steps, and appends one JSON line per evaluation to
``docs/bench/learning_offpolicy.jsonl``: ``{case, seed, step, mean_reward, ...}``. A case passes when at least
``min_pass`` of its seeds end at or above ``threshold``; a comparison case (DRQN vs DQN) passes when the mean final
return of the case beats its ``baseline`` case by ``margin``. The table goes to ``docs/learning_offpolicy.md``.

Runs already in the JSONL are skipped, so an interrupted bench resumes. Usage::

    nice -n 10 python bench/learning_offpolicy.py sac_pendulum td3_pendulum ddpg_pendulum
    python bench/learning_offpolicy.py --table          # only rebuild the table from the JSONL
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from cardio.build import build_runner

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "bench" / "learning_offpolicy.jsonl"
TABLE = ROOT / "docs" / "learning_offpolicy.md"


@dataclass(frozen=True)
class Case:
    """One agent on one env with fixed hyperparameters, run over several seeds."""

    overrides: tuple[str, ...]
    """Hydra overrides on top of ``train.yaml`` (agent, env, anything the zoo file does not set)."""
    threshold: float | None = None
    """Final ``eval/mean_reward`` a seed must reach (``None``: compared against ``baseline`` instead)."""
    min_pass: int = 4
    """Seeds out of ``seeds`` that must reach ``threshold``."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Seeds run."""
    eval_freq: int = 2_000
    """Env steps between evaluations (the learning curve's resolution)."""
    baseline: str | None = None
    """Case whose mean final return this one must beat by ``margin``."""
    margin: float = 0.0
    """How much better than ``baseline`` counts as clearly better."""
    ci: bool = True
    """Run by default (feasible on a 2-core CPU); LunarLanderContinuous's 5e5 steps are not."""


CASES: dict[str, Case] = {
    "sac_pendulum": Case(("agent=sac", "env=Pendulum"), threshold=-200.0),
    "td3_pendulum": Case(("agent=td3", "env=Pendulum"), threshold=-200.0),
    "ddpg_pendulum": Case(("agent=ddpg", "env=Pendulum"), threshold=-250.0),
    "dqn_cartpole_novel": Case(("agent=dqn", "env=CartPoleNoVel"), eval_freq=5_000),
    "drqn_cartpole_novel": Case(
        ("agent=drqn", "env=CartPoleNoVel"),
        eval_freq=5_000,
        baseline="dqn_cartpole_novel",
        margin=50.0,
    ),
    "sac_lunarlandercontinuous": Case(
        ("agent=sac", "env=LunarLanderContinuous"), threshold=200.0, eval_freq=25_000, ci=False
    ),
}


def run_one(name: str, case: Case, seed: int) -> list[dict[str, float]]:
    """Train one seed of a case; returns its evaluations (also appended to the JSONL as they come)."""
    torch.set_num_threads(1)
    overrides = [*case.overrides, f"seed={seed}", f"runner.eval_freq={case.eval_freq}", "logger=csv"]
    with initialize_config_dir(version_base=None, config_dir=str(ROOT / "configs")):
        cfg = compose("train", overrides=[*overrides, f"run_dir={ROOT}/outputs/bench/{name}/seed{seed}"])
    rows: list[dict[str, float]] = []
    started = time.perf_counter()

    class Record:
        def on_eval(self, runner, metrics: dict[str, float]) -> None:
            row = {"case": name, "seed": seed, "step": runner.env_steps, "wall_s": time.perf_counter() - started}
            row |= {k.split("/")[1]: v for k, v in metrics.items()}
            rows.append(row)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            with RESULTS.open("a") as f:
                f.write(json.dumps(row) + "\n")

    runner = build_runner(cfg, callbacks=[Record()])
    runner.run()
    final = rows[-1]
    final_row = {**final, "final": True, "total_steps": OmegaConf.select(cfg, "runner.total_steps")}
    with RESULTS.open("a") as f:
        f.write(json.dumps(final_row) + "\n")
    return rows


def run_sb3(name: str, case: Case, seed: int) -> list[dict]:
    """The same case in Stable-Baselines3 (same hyperparameters, seeds and eval schedule), rows named
    ``<case>@sb3``. Only SAC, TD3, DDPG and DQN have an SB3 counterpart (SB3 has no DRQN)."""
    import gymnasium as gym
    import stable_baselines3 as sb3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.noise import NormalActionNoise

    from cardio.runner import EVAL_SEED_OFFSET

    torch.set_num_threads(1)
    with initialize_config_dir(version_base=None, config_dir=str(ROOT / "configs")):
        cfg = compose("train", overrides=[*case.overrides, f"seed={seed}", "run_dir=/tmp"])
    algo = cfg.agent._target_.rsplit(".", 1)[1].removesuffix("Config")
    a, s = cfg.agent, cfg.runner.schedule
    env = gym.make(cfg.env.id, **cfg.env.kwargs)
    eval_env = gym.make(cfg.env.id, **cfg.env.kwargs)
    eval_env.reset(seed=seed + EVAL_SEED_OFFSET)
    kwargs: dict = dict(
        learning_rate=a.lr, gamma=a.gamma, buffer_size=cfg.buffer.capacity, learning_starts=s.learning_starts,
        batch_size=s.batch_size, train_freq=s.train_freq, gradient_steps=s.gradient_steps, seed=seed,
        policy_kwargs={"net_arch": list(a.hidden_sizes)},
    )  # fmt: skip
    if algo == "SAC":
        kwargs |= dict(tau=a.tau, ent_coef=a.ent_coef, target_entropy=a.target_entropy)
    elif algo in ("TD3", "DDPG"):
        dim = int(np.prod(env.action_space.shape or (1,)))
        kwargs |= dict(tau=a.tau, action_noise=NormalActionNoise(np.zeros(dim), a.noise_std * np.ones(dim)))
    elif algo == "DQN":
        kwargs |= dict(
            target_update_interval=a.target_update_interval, exploration_fraction=a.exploration_fraction,
            exploration_final_eps=a.exploration_final_eps, max_grad_norm=a.max_grad_norm,
        )  # fmt: skip
    else:
        raise SystemExit(f"{name}: SB3 has no {algo}")
    model = getattr(sb3, algo)("MlpPolicy", env, **kwargs)
    rows: list[dict] = []
    started = time.perf_counter()

    def evaluate(step: int) -> None:
        returns, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, return_episode_rewards=True)
        row = {"case": f"{name}@sb3", "seed": seed, "step": step, "wall_s": time.perf_counter() - started}
        row |= {"mean_reward": float(np.mean(returns)), "std_reward": float(np.std(returns))}
        rows.append(row)
        with RESULTS.open("a") as f:
            f.write(json.dumps(row) + "\n")

    class Every(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % case.eval_freq == 0:
                evaluate(self.num_timesteps)
            return True

    model.learn(total_timesteps=int(cfg.runner.total_steps), callback=Every())
    with RESULTS.open("a") as f:
        f.write(json.dumps({**rows[-1], "final": True}) + "\n")
    return rows


def plot(rows: list[dict]) -> Path:
    """Mean learning curve per case over its finished seeds (shaded: min-max), cardio next to SB3, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in CASES if any(r["case"] == n for r in rows)]
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4.5 * max(len(names), 1), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=False):
        for label in (name, f"{name}@sb3"):
            curves: dict[int, dict[int, float]] = {}
            done = finals(rows, label)  # finished seeds only: an interrupted seed would cut every curve short
            for r in rows:
                if r["case"] == label and not r.get("final") and r["seed"] in done:
                    curves.setdefault(r["seed"], {})[r["step"]] = r["mean_reward"]
            if not curves:
                continue
            steps = sorted(set.intersection(*(set(c) for c in curves.values())))
            values = np.array([[c[t] for t in steps] for c in curves.values()])  # [seeds, steps]
            tag = "SB3" if label.endswith("@sb3") else "cardio"
            ax.plot(steps, values.mean(0), label=f"{tag} ({len(curves)} seeds)")
            ax.fill_between(steps, values.min(0), values.max(0), alpha=0.2)
        if CASES[name].threshold is not None:
            ax.axhline(CASES[name].threshold, color="grey", ls="--", lw=0.8)
        ax.set(title=name, xlabel="env steps", ylabel="eval/mean_reward")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = ROOT / "docs" / "learning_offpolicy.png"
    fig.savefig(path, dpi=110)
    return path


def load() -> list[dict]:
    return [json.loads(line) for line in RESULTS.read_text().splitlines()] if RESULTS.exists() else []


def finals(rows: list[dict], name: str) -> dict[int, float]:
    return {r["seed"]: r["mean_reward"] for r in rows if r["case"] == name and r.get("final")}


def table(rows: list[dict]) -> str:
    """Markdown table: per case, final return per seed, mean, and the verdict."""
    lines = [
        "| case | seeds | final eval/mean_reward per seed | mean | criterion | verdict |",
        "|---|---|---|---|---|---|",
    ]
    labelled = [(label, case) for name, case in CASES.items() for label in (name, f"{name}@sb3")]
    for name, case in labelled:
        got = finals(rows, name)
        if not got and name.endswith("@sb3"):
            continue
        if not got:
            lines.append(f"| {name} | 0 | not run | | | |")
            continue
        per_seed = ", ".join(f"{s}: {v:.0f}" for s, v in sorted(got.items()))
        mean = float(np.mean(list(got.values())))
        if case.threshold is not None:
            passed = sum(v >= case.threshold for v in got.values())
            crit = f">= {case.threshold:.0f} in {case.min_pass}/{len(case.seeds)} seeds"
            verdict = f"{passed}/{len(got)} pass" + (" ✅" if passed >= case.min_pass else " ❌")
        elif case.baseline is not None:
            base = finals(rows, case.baseline)
            base_mean = float(np.mean(list(base.values()))) if base else float("nan")
            crit = f"mean > {case.baseline} mean + {case.margin:.0f}"
            verdict = f"{mean:.0f} vs {base_mean:.0f}" + (" ✅" if mean > base_mean + case.margin else " ❌")
        else:
            crit, verdict = "baseline", ""
        lines.append(f"| {name} | {len(got)} | {per_seed} | {mean:.1f} | {crit} | {verdict} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cases", nargs="*", help=f"cases to run (default: CI cases), from {sorted(CASES)}")
    parser.add_argument("--seeds", type=int, nargs="*", help="override the case's seeds")
    parser.add_argument("--table", action="store_true", help="only rebuild the table and plot from the JSONL")
    parser.add_argument("--sb3", action="store_true", help="run the cases in Stable-Baselines3 instead")
    args = parser.parse_args()
    os.chdir(ROOT)
    if not args.table:
        for name in args.cases or [n for n, c in CASES.items() if c.ci]:
            case = CASES[name]
            for seed in args.seeds if args.seeds is not None else case.seeds:
                if seed in finals(load(), f"{name}@sb3" if args.sb3 else name):
                    continue
                rows = run_sb3(name, case, seed) if args.sb3 else run_one(name, case, seed)
                print(f"{name} seed {seed}: {rows[-1]['mean_reward']:.1f} ({rows[-1]['wall_s']:.0f} s)", flush=True)
    TABLE.write_text("# Off-policy and recurrent agents: learning table\n\n" + table(load()))
    print(TABLE.read_text(), plot(load()))


if __name__ == "__main__":
    main()
