"""Optuna sweep over cardio runs: ``make sweep agent=dqn env=CartPole sweep=dqn_cartpole sweep.n_trials=40``.

Words ``sweep=<name>`` and ``sweep.<key>=...`` (or the shorthands ``n_trials= timeout= n_workers= storage=
study_name=``) set the sweep (``configs/sweep/<name>.yaml``, keys in :class:`cardio.sweep.SweepConfig`);
every other word is a Hydra override of ``train.yaml`` that each trial composes with. Re-running the same
command resumes the study. See docs/sweeps.md.
"""

from __future__ import annotations

import sys

from cardio.errors import report_user_errors
from cardio.sweep.driver import Sweep, compose_train, run_sweep
from cardio.sweep.settings import CONFIG_DIR, find_sweep_file, load_settings, split_overrides


def main(argv: list[str] | None = None) -> float:
    """Run the sweep the command line describes; returns the best value (nan when no trial completed)."""
    words = sys.argv[1:] if argv is None else argv
    if any(w in ("-h", "--help") for w in words):
        print(__doc__)
        return float("nan")
    with report_user_errors():
        name, sweep_words, train_overrides = split_overrides(words)
        choices = compose_train(CONFIG_DIR, train_overrides, hydra_node=True).hydra.runtime.choices
        path = find_sweep_file(name, str(choices.get("agent")), str(choices.get("env")))
        settings = load_settings(path, sweep_words)
        study = run_sweep(Sweep(settings, [*settings.overrides, *train_overrides]))  # the command line wins
        complete = [t for t in study.get_trials(deepcopy=False) if t.value is not None]
        return float(study.best_value) if complete else float("nan")


if __name__ == "__main__":
    main()
