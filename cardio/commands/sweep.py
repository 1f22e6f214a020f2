"""Optuna sweep over cardio runs: ``make sweep agent=dqn env=CartPole sweep=dqn_cartpole sweep.n_trials=40``.

Words ``sweep=<name>`` and ``sweep.<key>=...`` (or the shorthands ``n_trials= timeout= n_workers= storage=
study_name=``) set the sweep (``configs/sweep/<name>.yaml``, keys in :class:`cardio.sweep.SweepConfig`);
every other word is a Hydra override of ``train.yaml`` that each trial composes with. Re-running the same
command resumes the study. ``hydra/launcher=slurm`` (and ``hydra.launcher.<key>=...``) runs the ``n_workers``
workers as a SLURM job array on one shared storage (cardio/sweep/slurm.py, docs/cluster.md). See docs/sweeps.md.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable

from optuna.trial import TrialState

from cardio.errors import report_user_errors
from cardio.paths import use_working_directory
from cardio.sweep.driver import Sweep, compose_train, run_sweep, run_workers
from cardio.sweep.settings import CONFIG_DIR, find_sweep_file, load_settings, split_overrides
from cardio.sweep.slurm import cluster_storage, launcher_params, slurm_workers, split_launcher


def main(argv: list[str] | None = None) -> float:
    """Run the sweep the command line describes; returns the best value.

    Exits with one line and status 1 when no trial completed (all pruned or failed: e.g. every trial diverged).
    """
    use_working_directory()
    words = sys.argv[1:] if argv is None else argv
    if any(w in ("-h", "--help") for w in words):
        print(__doc__)
        return float("nan")
    with report_user_errors():
        name, sweep_words, train_overrides = split_overrides(words)
        launcher, train_overrides = split_launcher(train_overrides)
        choices = compose_train(CONFIG_DIR, train_overrides, hydra_node=True).hydra.runtime.choices
        path = find_sweep_file(name, str(choices.get("agent")), str(choices.get("env")))
        settings = load_settings(path, sweep_words)
        workers: Callable[[Sweep], None] = run_workers
        if launcher:  # the workers as a SLURM job array: checked against the cluster before anything is submitted
            workers = slurm_workers(launcher_params(launcher, settings, CONFIG_DIR))
            settings = cluster_storage(settings)
        study = run_sweep(Sweep(settings, [*settings.overrides, *train_overrides]), workers)  # the command line wins
    states = Counter(t.state for t in study.get_trials(deepcopy=False))
    if not states[TrialState.COMPLETE]:  # pruned trials carry values too, but no best trial: say so, no traceback
        sys.exit(
            f"sweep {settings.study_name!r}: none of its {sum(states.values())} trials completed "
            f"({states[TrialState.PRUNED]} pruned, {states[TrialState.FAIL]} failed; reasons above), "
            "so there is no best config to export"
        )
    return float(study.best_value)


if __name__ == "__main__":
    main()
