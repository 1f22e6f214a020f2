"""Performance benchmark behind docs/performance.md: whole runs, one update, and the torch levers, as ratios.

    python bench/performance.py runs [--repeats 3] [--cases dqn_cartpole,ppo_cartpole,sac_pendulum] [--device cuda]
    python bench/performance.py update [--repeats 5]
    python bench/performance.py levers [--repeats 7]

``runs``: for each case (rl-zoo numbers, from ``configs/zoo/``), Stable-Baselines3, cardio-torch and a minimal
hand-written loop of the same arithmetic (same env, network, optimiser, batch and schedule; no metrics, no
logging, no checks) train for the case's env steps (or ``--steps``), interleaved round by round (SB3, cardio,
minimal, SB3, ...) in this process, one torch thread each. ``--clock cpu`` (default) times this process's CPU
seconds of each whole call (build and one final evaluation episode included, both small); ``--clock wall`` the
training loops' wall time only. Printed: the minimal loop's median time per 1e4 env steps and the medians of the
per-round ratios. cardio-jax (the case's JAX twin, ``agent=dqn_jax|ppo_jax|sac_jax`` on the same zoo numbers) joins the
rounds when jax is installed; its first call in the process pays the jit compilation, so every round keeps it.

``update``: one DQN update (Adam, Huber, grad clip) by cardio's agent and by the minimal loop's update function,
interleaved, for hidden widths [64, 64], [256, 256], [400, 300] and batch sizes 32, 64, 256.

``levers``: the torch levers of issue 12 measured in isolation (old way vs new way, interleaved), on the
rl-zoo DQN CartPole network ([256, 256], batch 64) and SAC's twin critics.

``update`` and ``levers`` time this process's CPU seconds (one torch thread), which a shared machine's load
hardly moves; ``runs`` times wall seconds (SB3's and cardio's loops are timed inside them). These machines are
shared and noisy (+-20 %): only the ratios within one run mean anything.
"""

from __future__ import annotations

import argparse
import copy
import functools
import gc
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import learning  # noqa: E402
from bench.learning import CASES, Case, run_cardio, run_sb3, sb3_off_policy  # noqa: E402
from cardio.agents.dqn import DQN, DQNConfig  # noqa: E402
from cardio.agents.networks import hard_update, mlp, soft_update  # noqa: E402

RUN_CASES: dict[str, tuple[Case, int]] = {
    # case, env steps per timed run (SAC makes one [256, 256] update per env step: 2e3 keeps a round short)
    "dqn_cartpole": (Case(("agent=dqn", "env=CartPole"), 10_000, sb3=sb3_off_policy, jax="dqn_jax"), 10_000),
    "ppo_cartpole": (CASES["ppo_cartpole"], 10_000),
    "sac_pendulum": (CASES["sac_pendulum"], 2_000),
}


# ------------------------------------------------------------------------------------------------ minimal loops
def dqn_update_fn(q: nn.Module, target: nn.Module, opt: torch.optim.Optimizer, gamma: float, max_norm: float):
    """The minimal DQN update: TD target, Huber loss, clipped Adam step; nothing else."""

    def update(o: torch.Tensor, a: torch.Tensor, r: torch.Tensor, no: torch.Tensor, term: torch.Tensor) -> None:
        with torch.no_grad():
            td_target = r + gamma * (1.0 - term) * target(no).max(dim=1).values
        q_taken = q(o).gather(1, a.view(-1, 1)).squeeze(1)
        loss = F.smooth_l1_loss(q_taken, td_target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(q.parameters(), max_norm)
        opt.step()

    return update


def minimal_dqn(seed: int, steps: int) -> None:
    """rl-zoo DQN CartPole: lr 2.3e-3, [256, 256], buffer 1e5, starts 1000, train_freq 256, 128 updates of 64,
    target sync every 10 steps, epsilon 1 -> 0.04 over 16 % of the run."""
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    q = mlp(4, (256, 256), 2)
    target = copy.deepcopy(q).requires_grad_(False)
    update = dqn_update_fn(q, target, torch.optim.Adam(q.parameters(), lr=2.3e-3, fused=True), 0.99, 10.0)
    cap = 100_000
    b_obs, b_next = np.zeros((cap, 4), np.float32), np.zeros((cap, 4), np.float32)
    b_act, b_rew, b_term = np.zeros(cap, np.int64), np.zeros(cap, np.float32), np.zeros(cap, np.float32)
    for t in range(steps):
        eps = max(0.04, 1.0 - (1.0 - 0.04) * t / (0.16 * steps))
        if t < 1000 or rng.random() < eps:
            action = int(rng.integers(2))
        else:
            with torch.no_grad():
                action = int(q(torch.from_numpy(obs)[None]).argmax())
        next_obs, reward, terminated, truncated, _ = env.step(action)
        i = t % cap
        b_obs[i], b_act[i], b_rew[i], b_next[i], b_term[i] = obs, action, reward, next_obs, terminated
        obs = env.reset()[0] if terminated or truncated else next_obs
        if (t + 1) % 10 == 0:
            hard_update(target, q)
        if t + 1 >= 1000 and (t + 1) % 256 == 0:
            for _ in range(128):
                idx = rng.integers(0, min(t + 1, cap), 64)
                update(*(torch.from_numpy(x[idx]) for x in (b_obs, b_act, b_rew, b_next, b_term)))


def minimal_ppo(seed: int, steps: int) -> None:
    """rl-zoo PPO CartPole: 8 envs, n_steps 32, 20 epochs of one 256 minibatch, gamma 0.98, lambda 0.8, lr and
    clip linear to 0, separate tanh [64, 64] actor and critic, grad clip 0.5. (No truncation bootstrap.)"""
    n_envs, n_steps, epochs, gamma, lam = 8, 32, 20, 0.98, 0.8
    envs = gym.make_vec("CartPole-v1", num_envs=n_envs, vectorization_mode="sync")
    obs, _ = envs.reset(seed=seed)
    torch.manual_seed(seed)
    actor, critic = mlp(4, (64, 64), 2, nn.Tanh), mlp(4, (64, 64), 1, nn.Tanh)
    params = [*actor.parameters(), *critic.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    b_obs = np.zeros((n_steps, n_envs, 4), np.float32)
    b_act, b_logp, b_val, b_rew, b_done = (np.zeros((n_steps, n_envs), np.float32) for _ in range(5))
    done = np.zeros(n_envs, np.float32)
    for it in range(steps // (n_steps * n_envs)):
        frac = 1.0 - it * n_steps * n_envs / steps
        for group in opt.param_groups:
            group["lr"] = 1e-3 * frac
        for t in range(n_steps):
            with torch.no_grad():
                x = torch.from_numpy(obs)
                dist = torch.distributions.Categorical(logits=actor(x))
                action = dist.sample()
                b_logp[t], b_val[t] = dist.log_prob(action).numpy(), critic(x).squeeze(1).numpy()
            b_obs[t], b_act[t], b_done[t] = obs, action.numpy(), done
            obs, reward, terminated, truncated, _ = envs.step(action.numpy())
            b_rew[t], done = reward, (terminated | truncated).astype(np.float32)
        with torch.no_grad():
            last_val = critic(torch.from_numpy(obs)).squeeze(1).numpy()
        adv, gae = np.zeros_like(b_rew), 0.0
        for t in reversed(range(n_steps)):
            next_val, next_nonterm = (last_val, 1.0 - done) if t == n_steps - 1 else (b_val[t + 1], 1.0 - b_done[t + 1])
            delta = b_rew[t] + gamma * next_val * next_nonterm - b_val[t]
            adv[t] = gae = delta + gamma * lam * next_nonterm * gae
        o, a = torch.from_numpy(b_obs.reshape(-1, 4)), torch.from_numpy(b_act.reshape(-1)).long()
        old_logp, ad = torch.from_numpy(b_logp.reshape(-1)), torch.from_numpy(adv.reshape(-1))
        ret = ad + torch.from_numpy(b_val.reshape(-1))
        clip = 0.2 * frac
        for _ in range(epochs):
            dist = torch.distributions.Categorical(logits=actor(o))
            ratio = (dist.log_prob(a) - old_logp).exp()
            norm_adv = (ad - ad.mean()) / (ad.std() + 1e-8)
            pg = -torch.min(ratio * norm_adv, ratio.clamp(1 - clip, 1 + clip) * norm_adv).mean()
            loss = pg + 0.5 * F.mse_loss(critic(o).squeeze(1), ret)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 0.5)
            opt.step()


def minimal_sac(seed: int, steps: int) -> None:
    """rl-zoo SAC Pendulum: lr 1e-3, [256, 256] actor and twin critics, batch 256, one update per step after 256,
    tau 0.005, alpha learnt from 1 with target entropy -1."""
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    actor = mlp(3, (256, 256), 2)  # mean and log std of the one action dim
    critics = nn.ModuleList(mlp(4, (256, 256), 1) for _ in range(2))
    targets = copy.deepcopy(critics).requires_grad_(False)
    log_alpha = torch.zeros((), requires_grad=True)
    a_opt = torch.optim.Adam(actor.parameters(), lr=1e-3, fused=True)
    c_opt = torch.optim.Adam(critics.parameters(), lr=1e-3, fused=True)
    al_opt = torch.optim.Adam([log_alpha], lr=1e-3)

    def policy(o: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = actor(o).chunk(2, dim=1)
        std = log_std.clamp(-20, 2).exp()
        u = mean + std * torch.randn_like(mean)
        a = torch.tanh(u)
        logp = (-0.5 * ((u - mean) / std) ** 2 - std.log() - 0.5 * np.log(2 * np.pi)).sum(1)
        return a, logp - torch.log(1 - a.pow(2) + 1e-6).sum(1)

    def q_min(nets: nn.ModuleList, o: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        x = torch.cat([o, a], dim=1)
        return torch.minimum(nets[0](x), nets[1](x)).squeeze(1)

    cap = 100_000
    b_obs, b_next = np.zeros((cap, 3), np.float32), np.zeros((cap, 3), np.float32)
    b_act, b_rew, b_term = np.zeros((cap, 1), np.float32), np.zeros(cap, np.float32), np.zeros(cap, np.float32)
    for t in range(steps):
        if t < 256:
            action = rng.uniform(-1, 1, 1).astype(np.float32)
        else:
            with torch.no_grad():
                action = policy(torch.from_numpy(obs)[None])[0][0].numpy()
        next_obs, reward, terminated, truncated, _ = env.step(2.0 * action)
        i = t % cap
        b_obs[i], b_act[i], b_rew[i], b_next[i], b_term[i] = obs, action, reward, next_obs, terminated
        obs = env.reset()[0] if terminated or truncated else next_obs
        if t + 1 < 256:
            continue
        idx = rng.integers(0, min(t + 1, cap), 256)
        o, a, r, no, term = (torch.from_numpy(x[idx]) for x in (b_obs, b_act, b_rew, b_next, b_term))
        pi_a, logp = policy(o)
        alpha_loss = -(log_alpha * (logp.detach() - 1.0)).mean()
        al_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        al_opt.step()
        alpha = log_alpha.detach().exp()
        with torch.no_grad():
            na, nlogp = policy(no)
            td_target = r + 0.99 * (1 - term) * (q_min(targets, no, na) - alpha * nlogp)
        x = torch.cat([o, a], dim=1)
        critic_loss = sum(0.5 * F.mse_loss(c(x).squeeze(1), td_target) for c in critics)
        c_opt.zero_grad(set_to_none=True)
        critic_loss.backward()  # type: ignore[union-attr]
        c_opt.step()
        critics.requires_grad_(False)
        actor_loss = (alpha * logp - q_min(critics, o, pi_a)).mean()
        a_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        a_opt.step()
        critics.requires_grad_(True)
        soft_update(targets, critics, 0.005)


MINIMAL: dict[str, Callable[[int, int], None]] = {
    "dqn_cartpole": minimal_dqn,
    "ppo_cartpole": minimal_ppo,
    "sac_pendulum": minimal_sac,
}


# ------------------------------------------------------------------------------------------------ sections
def timed(fn: Callable[[], Any], clock: Callable[[], float] = time.perf_counter) -> float:
    gc.collect()
    start = clock()
    fn()
    return clock() - start


def jax_available() -> bool:
    """Whether the ``jax`` extra is installed (the cardio-jax column is left out without it)."""
    try:
        import jax  # noqa: F401
        import optax  # noqa: F401
    except ImportError:
        return False
    return True


def runs(cases: list[str], repeats: int, clock: str = "cpu", steps_override: int = 0, device: str = "cpu") -> None:
    """The ``runs`` section (module docstring). ``device`` other than ``cpu`` puts SB3's and cardio's networks there
    (``bench.learning.DEVICE``) and leaves the minimal loop out: it is the eager-torch floor on the CPU, so its
    columns print ``-``; SB3 / cardio stay side by side in the same rounds."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {device}: torch sees no CUDA GPU here (torch.cuda.is_available() is False)")
    learning.DEVICE = device
    with_jax = jax_available()
    with_minimal = device == "cpu"
    print(f"device: {device}" + ("" if with_minimal else " (the minimal loop is the CPU floor: left out)"))
    print(
        "| case | steps/run | SB3 / minimal | cardio-torch / minimal | cardio-jax / minimal | SB3 / cardio-torch "
        "| SB3 / cardio-jax | minimal s per 1e4 steps |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in cases:
        case, steps = RUN_CASES[name]
        steps = steps_override or steps
        short = replace(case, total_steps=steps, eval_freq=10**9, eval_episodes=1)
        libs = ["sb3", "cardio"] + (["cardio_jax"] if with_jax and case.jax is not None else [])
        walls: dict[str, list[float]] = {lib: [] for lib in [*libs, "minimal"]}
        for seed in range(repeats):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for lib in libs:
                    call = (
                        functools.partial(run_sb3, short, seed)
                        if lib == "sb3"
                        else functools.partial(run_cardio, f"{name}_perf", short, seed, lib)
                    )
                    if clock == "wall":  # training only, timed inside each library's loop
                        walls[lib].append(call()["train_wall"])
                    else:  # this process's CPU seconds for the whole call: build, training, one final episode
                        walls[lib].append(timed(call, time.process_time))
            clock_fn = time.perf_counter if clock == "wall" else time.process_time
            if with_minimal:
                walls["minimal"].append(timed(functools.partial(MINIMAL[name], seed, steps), clock_fn))
            done = ", ".join(f"{k} {v[-1]:.1f}s" for k, v in walls.items() if v)  # no minimal loop off the CPU
            print(f"  {name} round {seed}: {done}", flush=True)

        per_1e4 = f"{statistics.median(walls['minimal']) * 1e4 / steps:.1f}" if walls["minimal"] else "-"
        jax_cells = (
            (ratio(walls["cardio_jax"], walls["minimal"]), ratio(walls["sb3"], walls["cardio_jax"]))
            if walls.get("cardio_jax")
            else ("-", "-")
        )
        print(
            f"| {name} | {steps} | {ratio(walls['sb3'], walls['minimal'])} | "
            f"{ratio(walls['cardio'], walls['minimal'])} | {jax_cells[0]} | {ratio(walls['sb3'], walls['cardio'])} | "
            f"{jax_cells[1]} | {per_1e4} |",
            flush=True,
        )


def ratio(a: list[float], b: list[float]) -> str:
    """Median of the per-round ratios a / b; ``-`` when either side did not run."""
    if not a or not b:
        return "-"
    return f"{statistics.median(x / y for x, y in zip(a, b, strict=True)):.2f}"


def dqn_batch(rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
    return {
        "obs": rng.standard_normal((size, 4)).astype(np.float32),
        "action": rng.integers(0, 2, size),
        "reward": rng.standard_normal(size).astype(np.float32),
        "next_obs": rng.standard_normal((size, 4)).astype(np.float32),
        "terminated": rng.random(size) < 0.05,
        "truncated": np.zeros(size, bool),
    }


def update(repeats: int, n: int = 30) -> None:
    """cardio's DQN.update vs the minimal update function: ms per update and their ratio."""
    print("| hidden | batch | minimal ms/update | cardio ms/update | cardio / minimal |")
    print("|---|---|---|---|---|")
    for hidden in ((64, 64), (256, 256), (400, 300)):
        for size in (32, 64, 256):
            ms = time_update(hidden, size, repeats, n)
            print(
                f"| {list(hidden)} | {size} | {statistics.median(ms['minimal']):.2f} | "
                f"{statistics.median(ms['cardio']):.2f} | {ratio(ms['cardio'], ms['minimal'])} |",
                flush=True,
            )


def time_update(hidden: tuple[int, ...], size: int, repeats: int, n: int) -> dict[str, list[float]]:
    """ms per update of each side over ``repeats`` interleaved rounds of ``n`` updates."""
    rng = np.random.default_rng(0)
    batches = [dqn_batch(rng, size) for _ in range(n)]
    obs_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    agent = DQN(obs_space, gym.spaces.Discrete(2), DQNConfig(hidden_sizes=hidden), seed=0)
    q = mlp(4, hidden, 2)
    fn = dqn_update_fn(q, copy.deepcopy(q), torch.optim.Adam(q.parameters(), lr=1e-4, fused=True), 0.99, 10)
    keys = ("obs", "action", "reward", "next_obs", "terminated")
    tensors = [[torch.from_numpy(np.asarray(b[k])) for k in keys] for b in batches]
    for t in tensors:
        t[4] = t[4].float()

    def cardio_side() -> None:
        for b in batches:
            agent.update(b)

    def minimal_side() -> None:
        for t in tensors:
            fn(*t)

    cardio_side()  # warm-up
    minimal_side()
    ms: dict[str, list[float]] = {"minimal": [], "cardio": []}
    for _ in range(repeats):
        ms["minimal"].append(timed(minimal_side, time.process_time) / n * 1e3)
        ms["cardio"].append(timed(cardio_side, time.process_time) / n * 1e3)
    return ms


def levers(repeats: int) -> None:
    """Old way vs new way of each lever, interleaved; microseconds per call and the ratio new / old."""
    torch.manual_seed(0)
    q, target = mlp(4, (256, 256), 2), mlp(4, (256, 256), 2)
    critics = nn.ModuleList(mlp(4, (256, 256), 1) for _ in range(2))
    critic_targets = copy.deepcopy(critics)
    params = list(q.parameters())
    rng = np.random.default_rng(0)
    obs = torch.from_numpy(rng.standard_normal((64, 4)).astype(np.float32))
    phase = torch.from_numpy(rng.standard_normal((128 * 64, 4)).astype(np.float32))  # one zoo phase: 128 x 64
    q(obs).sum().backward()
    scalars = [q(obs).mean(), q(obs).max(), q(obs).min(), torch.tensor(2.0)]

    def clip_loop() -> None:
        nn.utils.clip_grad_norm_(params, 1e9)

    def clip_foreach() -> None:
        nn.utils.clip_grad_norm_(params, 1e9, foreach=True)

    def sync_state_dict() -> None:
        target.load_state_dict(q.state_dict())

    @torch.no_grad()
    def polyak_loop() -> None:
        for t, s in zip(critic_targets.parameters(), critics.parameters(), strict=True):
            t.lerp_(s, 0.005)

    @torch.no_grad()
    def target_per_batch() -> None:
        for chunk in phase.split(64):
            target(chunk).max(dim=1)

    @torch.no_grad()
    def target_per_phase() -> None:
        target(phase).max(dim=1).values.view(128, 64)

    pairs: dict[str, tuple[Callable[[], Any], Callable[[], Any], int]] = {
        "target sync: load_state_dict -> _foreach_copy_": (sync_state_dict, lambda: hard_update(target, q), 200),
        "SAC soft update: lerp_ loop -> _foreach_lerp_": (
            polyak_loop,
            lambda: soft_update(critic_targets, critics, 0.005),
            200,
        ),
        "grad clip: clip_grad_norm_ -> foreach=True": (clip_loop, clip_foreach, 200),
        "metrics: 4 x .item() -> one .tolist()": (
            lambda: [s.item() for s in scalars],
            lambda: torch.stack(scalars).tolist(),
            2000,
        ),
        "DQN target forward: per batch -> per phase (128 x 64)": (target_per_batch, target_per_phase, 2),
    }
    print("| lever | old us/call | new us/call | new / old |")
    print("|---|---|---|---|")
    for name, (old, new, n) in pairs.items():
        times: dict[str, list[float]] = {"old": [], "new": []}
        old(), new()
        for _ in range(repeats):
            for side, fn in (("old", old), ("new", new)):
                start = time.process_time()
                for _ in range(n):
                    fn()
                times[side].append((time.process_time() - start) / n * 1e6)
        ratio = statistics.median(b / a for a, b in zip(times["old"], times["new"], strict=True))
        print(
            f"| {name} | {statistics.median(times['old']):,.1f} | {statistics.median(times['new']):,.1f} | "
            f"{ratio:.2f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("section", choices=["runs", "update", "levers"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default=",".join(RUN_CASES))
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu", help="runs: CPU or wall seconds")
    parser.add_argument("--steps", type=int, default=0, help="runs: env steps per round (0: the case's own)")
    parser.add_argument(
        "--device", default="cpu", help="runs: SB3's and cardio's device (cpu, cuda); with --clock wall"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.section == "runs":
        runs(args.cases.split(","), args.repeats, args.clock, args.steps, args.device)
    elif args.section == "update":
        update(args.repeats)
    else:
        levers(args.repeats)


if __name__ == "__main__":
    main()
