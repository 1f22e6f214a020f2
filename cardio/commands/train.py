"""Train an agent: ``make train agent=dqn env=CartPole seed=3`` (any Hydra override works).

Composes ``configs/train.yaml`` with the zoo overlay of the env id actually built (cardio/config.py), validates it
(cardio/validate.py), prints which zoo file applied and the resolved config, saves it, builds env, agent, buffer,
logger and runner, trains, and returns the final ``eval/mean_reward`` so Hydra sweepers can optimise it.
``resume=<run dir or checkpoint>`` continues an interrupted run in its own run dir (docs/checkpoints.md).
Ctrl-C or SIGTERM writes a checkpoint, closes the sinks and exits with 130 (143 for SIGTERM). Inside a SLURM job
(``hydra/launcher=slurm``) a requeued job continues its own run dir from its checkpoint, and SLURM's time-limit
signal (SIGUSR2) checkpoints and requeues the job (cardio/cluster/requeue.py, docs/cluster.md).
A user error (a bad override, value, env id or space, a full disk) prints one ``error:`` line and exits with 2;
``CARDIO_TRACEBACK=1`` shows its traceback (cardio/errors.py).
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from cardio import checkpoint, provenance
from cardio.build import build_runner, save_config
from cardio.cluster import requeue
from cardio.config import apply_zoo, check_command_line, describe_zoo
from cardio.errors import report_user_errors
from cardio.finite import NonFiniteError
from cardio.loggers import print_config_tree
from cardio.loggers.base import Logger
from cardio.paths import config_dir, use_working_directory
from cardio.validate import validate

_default_format = warnings.formatwarning


def format_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
) -> str:
    """cardio's warnings about the config (e.g. ``runner.total_steps`` not a multiple of a rollout) are raised in
    objects Hydra instantiates, so Python's default format would point into Hydra's internals: print those as the
    message alone, which names the config key. Warnings from anywhere else keep their file and line."""
    if f"{Path('hydra', '_internal')}" in filename:
        return f"{category.__name__}: {message}\n"
    return _default_format(message, category, filename, lineno, line)


warnings.formatwarning = format_warning


@hydra.main(config_path=str(config_dir()), config_name="train", version_base=None)
def hydra_main(cfg: DictConfig) -> float:
    with report_user_errors():
        return train(cfg)


def main() -> float:
    """``cardio train`` / ``cardio-train`` / ``python scripts/train.py``: Hydra overrides from ``sys.argv``;
    ``-m`` for a multirun. The working directory's modules and ``configs/`` are found (cardio/commands)."""
    use_working_directory()
    check_command_line(sys.argv[1:])  # a bad override, option or value: one line, before Hydra makes the run dir
    if any(w.lstrip("+").startswith("hydra/launcher=") for w in sys.argv[1:]):  # SLURM: checked against it
        from cardio.cluster.launcher import check_command_line as check_launcher_words

        check_launcher_words(sys.argv[1:])
    return hydra_main()


def compose_run(cfg: DictConfig) -> tuple[DictConfig, Path | None, DictConfig]:
    """The config to run, validated; the checkpoint to resume from (``None``: a fresh run); and the command line's
    own config with its zoo overlay, which a resume compares with the run's saved config (the saved one has its
    overlay too: ``agent=dqn env=CartPole`` given again must read as the same agent)."""
    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    first = cfg
    cfg = apply_zoo(cfg, hydra_cfg.runtime.choices.get("zoo"), overrides, recompose)
    requeued = requeue.requeued_run(Path(str(cfg.run_dir))) if cfg.get("resume") is None else None
    if requeued is not None:  # a later attempt of this SLURM job: continue its run (cardio/cluster/requeue.py)
        job = requeue.this_job()
        print(f"SLURM job {job.job_id if job else '?'} restarted: continuing {requeued} from its checkpoint")
        with open_dict(cfg):
            cfg.resume = str(requeued)
    if cfg.get("resume") is not None:
        resumed, ckpt = checkpoint.resume_config(cfg, overrides)
        return validate(resumed), ckpt, cfg
    validate(cfg)
    if cfg is not first and hydra_cfg.output_subdir is not None:  # Hydra saved the first pass: keep its copy true
        saved = Path(hydra_cfg.runtime.output_dir) / str(hydra_cfg.output_subdir) / "config.yaml"
        if saved.is_file():
            saved.write_text(OmegaConf.to_yaml(cfg))
    return cfg, None, cfg


def recompose(overrides: list[str]) -> DictConfig:
    """``train.yaml`` composed again inside this Hydra app (the zoo overlay's second pass)."""
    return hydra.compose(config_name=HydraConfig.get().job.config_name, overrides=overrides)


def train(cfg: DictConfig) -> float:
    cfg, ckpt, composed = compose_run(cfg)
    if ckpt is not None:  # before save_config rewrites config.yaml with this dir as run_dir
        for line in checkpoint.fork_copied_run(Path(str(cfg.run_dir))):
            print(line)
    print(describe_zoo(cfg))
    print_config_tree(cfg)
    save_config(cfg, cfg.run_dir)
    requeue.record_attempt(Path(str(cfg.run_dir)))  # in a SLURM job: which job trains here, which attempt
    if cfg.get("seeds") is not None:
        return train_seeds(cfg, ckpt, composed)
    note = provenance.record_run(cfg.run_dir, cfg.get("device", "cpu"), resuming=ckpt is not None)
    if note is not None:
        print(note)
    runner = build_runner(cfg)
    if ckpt is not None:
        print(f"resuming from {ckpt}")
        runner.load(ckpt)
        runner.total_steps = int(cfg.runner.total_steps)  # `runner.total_steps=...` may extend a resumed run
    elif cfg.get("init_from") is not None:  # offline-to-online: a trained agent and a full buffer, fresh counters
        from cardio.datasets.finetune import warm_start

        copied = warm_start(runner, cfg.init_from)
        print(f"starting from {cfg.init_from}: agent loaded, {copied} transitions in the buffer")
    logger = runner.logger
    if logger is not None:
        logger.log_config(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    metrics: dict[str, float] = {}
    with closing_on_exit([logger]) as outcome:
        if runner.env_steps >= runner.total_steps:
            print(f"run already at {runner.env_steps} env steps; raise runner.total_steps to train longer")
            metrics = dict(runner.last_eval)
        else:
            metrics = runner.run()
    runner.close()  # envs and monitor.csv: a multirun's next job runs in this process
    print(f"run dir: {cfg.run_dir}")
    exit_on(outcome, cfg.run_dir)
    return float(metrics.get("eval/mean_reward", float("nan")))


@dataclass
class Outcome:
    """How a training run ended, as the process's exit code (1 until it completes)."""

    exit_code: int = 1


def exit_on(outcome: Outcome, run_dir: str) -> None:
    """Exit with the run's code unless it completed; stopped by SLURM's time-limit signal inside a job that
    cardio's launcher submitted, requeue the job first (it continues from the checkpoint just written)."""
    if not outcome.exit_code:
        return
    line = requeue.requeue_if_signalled(outcome.exit_code, f"resume={run_dir} continues it")
    if line is not None:
        print(line, file=sys.stderr, flush=True)
    sys.exit(outcome.exit_code)


@contextmanager
def closing_on_exit(loggers: Sequence[Logger | None]) -> Iterator[Outcome]:
    """Train inside; however it ends, every logger closes with the exit code (W&B marks the run finished, failed or
    interrupted by it). Completed: 0. ``checkpoint.Interrupted`` (Ctrl-C or SIGTERM, a checkpoint written): its
    message and code (130, 143). ``NonFiniteError``: one ``error:`` line naming the value and the step, code 1, the
    last checkpoint kept. A ``KeyboardInterrupt`` outside the runner's handler: 130, re-raised. Anything else: 1,
    re-raised. The caller exits with ``outcome.exit_code`` when it is not 0."""
    outcome = Outcome()
    try:
        yield outcome
        outcome.exit_code = 0
    except checkpoint.Interrupted as stop:
        print(stop, file=sys.stderr)
        outcome.exit_code = stop.exit_code
    except NonFiniteError as diverged:
        print(f"error: {diverged}", file=sys.stderr)
    except KeyboardInterrupt:
        outcome.exit_code = 130
        raise
    finally:
        for logger in loggers:
            if logger is not None:
                logger.close(outcome.exit_code)


def resumed_seed_configs(cfg: DictConfig, run_dir: Path, composed: DictConfig) -> list[DictConfig]:
    """Each seed's config to resume with: what ``resume=<run_dir>/seed_<s>`` would run, from that seed's own
    saved ``config.yaml`` (the paths in it are the seed's) and the command line's allowed overrides."""
    from cardio.multiseed import seed_dir_name

    # `seeds=` was checked against the run's by resume_config; a seed's own config has seeds null
    overrides = [o for o in HydraConfig.get().overrides.task if o.split("=", 1)[0].lstrip("+~") != "seeds"]
    configs = []
    for seed in cfg.seeds:
        one = composed.copy()
        one.resume = str(run_dir / seed_dir_name(int(seed)))
        configs.append(validate(checkpoint.resume_config(one, overrides)[0]))
    return configs


def train_seeds(cfg: DictConfig, ckpt: Path | None, composed: DictConfig) -> float:
    """``seeds=[...]``: one run per seed in ``<run_dir>/seed_<s>/``, trained together (cardio/multiseed.py);
    ``ckpt`` (the run dir, on ``resume=``) continues every seed from its ``last.ckpt``. Returns the mean final
    ``eval/mean_reward`` over seeds.

    Args:
        cfg: the run's config (on resume, the saved one with the allowed overrides).
        ckpt: the run dir to resume (``None``: a fresh run).
        composed: the config Hydra composed from the command line (each seed's resume starts from it).
    """
    from cardio.multiseed import MultiSeedRunner, seed_configs, write_finals
    from cardio.sweep.summary import print_summary, summarise, write_summary

    configs = seed_configs(cfg) if ckpt is None else resumed_seed_configs(cfg, ckpt, composed)
    for one in configs:
        save_config(one, one.run_dir)
        provenance.record_run(one.run_dir, one.get("device", "cpu"), resuming=ckpt is not None)
    runners = [build_runner(one) for one in configs]
    multi = MultiSeedRunner(runners, [int(one.seed) for one in configs])
    if ckpt is not None:
        print(f"resuming {len(runners)} seeds from {ckpt}")
        multi.load(ckpt)
        for runner in runners:  # `runner.total_steps=...` may extend a resumed run
            runner.total_steps = int(cfg.runner.total_steps)
        if multi.env_steps >= int(cfg.runner.total_steps):
            print(f"run already at {multi.env_steps} env steps; raise runner.total_steps to train longer")
            return float(np.mean([r.last_eval.get("eval/mean_reward", math.nan) for r in runners]))
    for runner, one in zip(runners, configs, strict=True):
        if runner.logger is not None:
            runner.logger.log_config(OmegaConf.to_container(one, resolve=True))  # type: ignore[arg-type]
    finals: list[dict[str, float]] = []
    with closing_on_exit([runner.logger for runner in runners]) as outcome:
        finals = multi.run()
    for runner in runners:
        runner.close()
    exit_on(outcome, cfg.run_dir)
    write_finals(cfg.run_dir, multi.seeds, finals)
    rows = summarise(Path(str(cfg.run_dir)), exclude_keys=("seed",))
    print_summary(rows, write_summary(rows, Path(str(cfg.run_dir)) / "summary.csv"))
    print(f"run dir: {cfg.run_dir}")
    return float(sum(f.get("eval/mean_reward", float("nan")) for f in finals) / len(finals))


if __name__ == "__main__":
    check_command_line(sys.argv[1:])  # a bad override, option or value: one line, before Hydra makes the run dir
    main()
