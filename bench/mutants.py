"""Mutation check of the critic-ensemble reductions and the target-network updates: each mutant must be killed.

    python bench/mutants.py [--worktree PATH] [--only SUBSTRING ...] [--list]

Every reduction over a critic ensemble (the clipped double-Q ``min`` of SAC, TD3 and IQL, SAC's actor ``min``,
TD3's and TD3+BC's first-critic actor, the critic losses' sum over the ensemble) and every target-network update
(Polyak helpers and their call sites, hard syncs) has mutants below: ``min -> max``, ``min -> mean``,
``min -> first critic``, ``first critic -> min / mean``, ``sum -> mean``, a reversed direction (the online
network moves towards the target, or the target is copied into the online network), ``tau -> 1 - tau``. For each
mutant the script edits one line of a throw-away git worktree, runs the mutant's tests there with ``PYTHONPATH``
on the worktree, records which tests failed, and restores the line. A mutant is *killed* when at least one test
fails; the script exits 1 if any survives (or if the unmutated baseline fails). The tests that pin these sites by
value are ``tests/test_ensembles.py`` and ``tests/test_jax_ensembles.py``; the others listed run beside them.

It never edits the checkout it is run from: without ``--worktree`` it makes a detached worktree of ``HEAD`` in a
temporary directory and removes it at the end (so only committed tests count). ``--worktree`` reuses an existing
worktree as it is (left in place; each edited file is restored after its mutant).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TORCH_OFF = ["tests/test_agent_maths.py", "tests/test_continuous_agents.py", "tests/test_ensembles.py"]
OFFLINE = ["tests/test_offline_agents.py", "tests/test_ensembles.py"]
HARD = ["tests/test_dqn.py", "tests/test_torch_levers.py", "tests/test_offline_agents.py", "tests/test_ensembles.py"]
JAX = ["tests/test_jax_agents.py", "tests/test_jax_parity.py", "tests/test_jax_ensembles.py"]
HELPERS = sorted({*TORCH_OFF, *OFFLINE, *HARD})


@dataclass(frozen=True)
class Mutant:
    """One textual edit: ``old`` (which must occur exactly once in ``path``) becomes ``new``."""

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


def mutants() -> list[Mutant]:
    """Every site x mutant, with the test files that exercise the site."""
    out: list[Mutant] = []

    def add(name: str, path: str, old: str, new: str, tests: list[str]) -> None:
        out.append(Mutant(name, path, old, new, tuple(tests)))

    # ---- torch SAC
    sac, sac_tests = "cardio/agents/sac.py", [*TORCH_OFF, "tests/test_jax_parity.py"]
    old = "next_q = q_values(self.target_critics, next_obs, next_action).min(dim=0).values"
    add("sac td target min->max", sac, old, old.replace(".min(dim=0).values", ".max(dim=0).values"), sac_tests)
    add("sac td target min->mean", sac, old, old.replace(".min(dim=0).values", ".mean(dim=0)"), sac_tests)
    add("sac td target min->first", sac, old, old.replace(".min(dim=0).values", "[0]"), sac_tests)
    old = "pi_q = q_values(self.critics, obs, pi_action).min(dim=0).values"
    add("sac actor min->max", sac, old, old.replace(".min(dim=0).values", ".max(dim=0).values"), sac_tests)
    add("sac actor min->mean", sac, old, old.replace(".min(dim=0).values", ".mean(dim=0)"), sac_tests)
    add("sac actor min->first", sac, old, old.replace(".min(dim=0).values", "[0]"), sac_tests)
    old = "critic_loss = 0.5 * ((q - td_target) ** 2 * weight).mean(dim=1).sum()"
    add("sac critic loss sum->mean", sac, old, old.replace(".sum()", ".mean()"), sac_tests)
    old = "soft_update(self.target_critics, self.critics, c.tau)"
    new = "soft_update(self.critics, self.target_critics, c.tau)"
    add("sac polyak reversed", sac, old, new, sac_tests)
    add("sac polyak tau->1-tau", sac, old, old.replace("c.tau", "1 - c.tau"), sac_tests)

    # ---- torch TD3 (DDPG is TD3 with one critic; TD3+BC inherits the update)
    td3, td3_tests = "cardio/agents/td3.py", [*TORCH_OFF, "tests/test_offline_agents.py"]
    old = "next_q = q_values(self.target_critics, next_obs, next_action).min(dim=0).values"
    add("td3 td target min->max", td3, old, old.replace(".min(dim=0).values", ".max(dim=0).values"), td3_tests)
    add("td3 td target min->mean", td3, old, old.replace(".min(dim=0).values", ".mean(dim=0)"), td3_tests)
    add("td3 td target min->first", td3, old, old.replace(".min(dim=0).values", "[0]"), td3_tests)
    old = "return -q_values(self.critics[:1], obs, self.actor(obs)).mean(), {}"
    new = "return -q_values(self.critics, obs, self.actor(obs)).min(dim=0).values.mean(), {}"
    add("td3 actor first->min", td3, old, new, td3_tests)
    add("td3 actor first->mean", td3, old, old.replace("self.critics[:1]", "self.critics"), td3_tests)
    old = "critic_loss = ((q - td_target) ** 2 * weight).mean(dim=1).sum()"
    add("td3 critic loss sum->mean", td3, old, old.replace(".sum()", ".mean()"), td3_tests)
    old = "soft_update(self.target_critics, self.critics, c.tau)"
    new = "soft_update(self.critics, self.target_critics, c.tau)"
    add("td3 critic polyak reversed", td3, old, new, td3_tests)
    add("td3 critic polyak tau->1-tau", td3, old, old.replace("c.tau", "1 - c.tau"), td3_tests)
    old = "soft_update(self.target_actor, self.actor, c.tau)"
    new = "soft_update(self.actor, self.target_actor, c.tau)"
    add("td3 actor polyak reversed", td3, old, new, td3_tests)
    add("td3 actor polyak tau->1-tau", td3, old, old.replace("c.tau", "1 - c.tau"), td3_tests)

    # ---- TD3+BC
    old = "q = q_values(self.critics[:1], obs, pi)[0]  # [B]"
    new_min = "q = q_values(self.critics, obs, pi).min(dim=0).values  # [B]"
    new_mean = "q = q_values(self.critics, obs, pi).mean(dim=0)  # [B]"
    add("td3_bc actor first->min", "cardio/agents/td3_bc.py", old, new_min, OFFLINE)
    add("td3_bc actor first->mean", "cardio/agents/td3_bc.py", old, new_mean, OFFLINE)

    # ---- IQL
    iql = "cardio/agents/iql.py"
    old = "target_q = q_values(self.target_critics, obs, action).min(dim=0).values  # [B]"
    add("iql value target min->max", iql, old, old.replace(".min(dim=0).values", ".max(dim=0).values"), OFFLINE)
    add("iql value target min->mean", iql, old, old.replace(".min(dim=0).values", ".mean(dim=0)"), OFFLINE)
    add("iql value target min->first", iql, old, old.replace(".min(dim=0).values", "[0]"), OFFLINE)
    old = "critic_loss = ((q - td_target) ** 2).mean(dim=1).sum()"
    add("iql critic loss sum->mean", iql, old, old.replace(".sum()", ".mean()"), OFFLINE)
    old = "soft_update(self.target_critics, self.critics, c.tau)"
    new = "soft_update(self.critics, self.target_critics, c.tau)"
    add("iql polyak reversed", iql, old, new, OFFLINE)
    add("iql polyak tau->1-tau", iql, old, old.replace("c.tau", "1 - c.tau"), OFFLINE)

    # ---- torch helpers and hard syncs
    nets = "cardio/agents/networks.py"
    old = "torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)"
    new = "torch._foreach_lerp_(list(source.parameters()), list(target.parameters()), tau)"
    add("soft_update reversed", nets, old, new, HELPERS)
    add("soft_update tau->1-tau", nets, old, old.replace(", tau)", ", 1 - tau)"), HELPERS)
    old = "torch._foreach_copy_([*target.parameters(), *target.buffers()], [*source.parameters(), *source.buffers()])"
    new = "torch._foreach_copy_([*source.parameters(), *source.buffers()], [*target.parameters(), *target.buffers()])"
    add("hard_update reversed", nets, old, new, HELPERS)
    old = "hard_update(self.target_net, self.q_net)"
    new = "hard_update(self.q_net, self.target_net)"
    add("dqn (and cql) hard sync reversed", "cardio/agents/dqn.py", old, new, HARD)
    add("drqn hard sync reversed", "cardio/agents/drqn.py", old, new, [*TORCH_OFF, "tests/test_dqn.py"])

    # ---- JAX twins
    jsac = "cardio/agents/jax/sac.py"
    old = "next_q = q_values(state.target_critics, next_obs, next_action).min(axis=0)"
    add("jax sac td target min->max", jsac, old, old.replace(".min(axis=0)", ".max(axis=0)"), JAX)
    add("jax sac td target min->mean", jsac, old, old.replace(".min(axis=0)", ".mean(axis=0)"), JAX)
    add("jax sac td target min->first", jsac, old, old.replace(".min(axis=0)", "[0]"), JAX)
    old = "pi_q = q_values(critics, obs, pi_action).min(axis=0)"
    add("jax sac actor min->max", jsac, old, old.replace(".min(axis=0)", ".max(axis=0)"), JAX)
    add("jax sac actor min->mean", jsac, old, old.replace(".min(axis=0)", ".mean(axis=0)"), JAX)
    add("jax sac actor min->first", jsac, old, old.replace(".min(axis=0)", "[0]"), JAX)
    old = 'return 0.5 * ((q - td_target) ** 2 * batch.get("weight", 1.0)).mean(axis=1).sum(), q'
    add("jax sac critic loss sum->mean", jsac, old, old.replace(".sum(), q", ".mean(), q"), JAX)
    old = "target_critics = polyak(state.target_critics, critics, c.tau)"
    new = "critics, target_critics = polyak(critics, state.target_critics, c.tau), state.target_critics"
    add("jax sac polyak reversed", jsac, old, new, JAX)
    add("jax sac polyak tau->1-tau", jsac, old, old.replace("c.tau", "1 - c.tau"), JAX)
    jnets = "cardio/agents/jax/networks.py"
    old = "return jax.tree.map(lambda t, o: t + tau * (o - t), target, online)"
    add("jax polyak swapped", jnets, old, old.replace("t + tau * (o - t)", "o + tau * (t - o)"), JAX)
    add("jax polyak away", jnets, old, old.replace("t + tau * (o - t)", "t - tau * (o - t)"), JAX)
    old = "self.state = self.state._replace(target_params=self.state.params)"
    new = "self.state = self.state._replace(params=self.state.target_params)"
    add("jax dqn hard sync reversed", "cardio/agents/jax/dqn.py", old, new, JAX)
    return out


def run_tests(worktree: Path, tests: tuple[str, ...], timeout: float) -> tuple[str, list[str]]:
    """``("passed" | "failed" | "timeout", failing test ids)`` of pytest on ``tests`` inside ``worktree``."""
    present = [t for t in tests if (worktree / t).exists()]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *present]
        env = {**os.environ, "PYTHONPATH": str(worktree)}
        try:
            proc = subprocess.run(cmd, cwd=worktree, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout", []
        failing = []
        if report.exists():
            for case in ET.parse(report).iter("testcase"):
                if case.find("failure") is not None or case.find("error") is not None:
                    failing.append(f"{case.get('classname', '').rsplit('.', 1)[-1]}.py::{case.get('name')}")
        if proc.returncode not in (0, 1) and not failing:
            failing = [f"pytest exit {proc.returncode}: {proc.stdout[-300:]}{proc.stderr[-300:]}"]
        return ("passed" if proc.returncode == 0 else "failed"), failing


def check_worktree(worktree: Path) -> None:
    """Refuse to mutate the checkout this script belongs to, and check that imports resolve into the worktree."""
    if worktree.resolve() == ROOT.resolve():
        raise SystemExit(f"refusing to mutate {ROOT}: pass another worktree (or none, for a temporary one)")
    env = {**os.environ, "PYTHONPATH": str(worktree)}
    where = subprocess.run(
        [sys.executable, "-c", "import cardio; print(cardio.__file__)"],
        cwd=worktree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(where).resolve().is_relative_to(worktree.resolve()):
        raise SystemExit(f"cardio imports from {where}, not from the worktree {worktree}")


def mutate_all(worktree: Path, chosen: list[Mutant], timeout: float) -> int:
    """Run the baseline, then every chosen mutant; print one line each and return the number of survivors."""
    check_worktree(worktree)
    all_tests = tuple(sorted({t for m in chosen for t in m.tests}))
    status, failing = run_tests(worktree, all_tests, timeout)
    if status != "passed":
        raise SystemExit(f"baseline does not pass ({status}): {failing}")
    print(f"baseline passed: {' '.join(all_tests)}", flush=True)
    survivors = 0
    for m in chosen:
        path = worktree / m.path
        source = path.read_text()
        if source.count(m.old) != 1:
            raise SystemExit(f"{m.name}: expected one {m.old!r} in {m.path}, found {source.count(m.old)}")
        path.write_text(source.replace(m.old, m.new))
        try:
            status, failing = run_tests(worktree, m.tests, timeout)
        finally:
            path.write_text(source)
        killed = status != "passed"
        survivors += not killed
        verdict = f"KILLED ({status}) by {', '.join(failing) or '?'}" if killed else "SURVIVED"
        print(f"{m.name}: {verdict}", flush=True)
    return survivors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worktree", type=Path, help="an existing worktree to mutate (default: a temporary one)")
    parser.add_argument("--only", nargs="*", default=[], help="run the mutants whose name contains any of these")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per pytest run")
    args = parser.parse_args()
    chosen = [m for m in mutants() if not args.only or any(s in m.name for s in args.only)]
    if args.list:
        for m in chosen:
            print(f"{m.name}: {m.path}: {m.old!r} -> {m.new!r}")
        return
    if args.worktree is not None:
        survivors = mutate_all(args.worktree, chosen, args.timeout)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            worktree = Path(tmp) / "mutants"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), "HEAD"], check=True)
            try:
                survivors = mutate_all(worktree, chosen, args.timeout)
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=True)
    print(f"{len(chosen) - survivors} of {len(chosen)} mutants killed")
    sys.exit(1 if survivors else 0)


if __name__ == "__main__":
    main()
