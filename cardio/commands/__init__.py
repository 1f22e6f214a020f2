"""cardio's commands, installed as ``cardio`` (with subcommands) and ``cardio-train``, ``cardio-sweep``,
``cardio-evaluate``, ``cardio-plot``; ``scripts/*.py`` and the ``make`` targets call the same functions.

    cardio train agent=dqn env=CartPole seed=3      # = make train ... = python scripts/train.py ...
    cardio multirun seed=0,1,2                      # = make multirun ... (Hydra's -m)
    cardio sweep sweep.n_trials=40                  # = make sweep ...
    cardio evaluate run=outputs/<run> episodes=20   # = make evaluate ...
    cardio plot runs=outputs/multirun/<dir>         # = make plot ...

Every command works from any folder: the working directory goes on the import path (so ``_target_:
my_agent.MyConfig`` finds ``./my_agent.py``), and its ``configs/`` folder joins Hydra's config search path
(``cardio/paths.py``), so a user's own agents, envs, sinks and configs need neither a cardio checkout nor
``PYTHONPATH``. See ``examples/reinforce/``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from cardio.paths import use_working_directory

__all__ = ["SUBCOMMANDS", "main", "use_working_directory"]

SUBCOMMANDS = ("train", "multirun", "sweep", "evaluate", "plot")
"""``cardio <subcommand> ...``; ``multirun`` is ``train -m``."""


def _command(name: str) -> Callable[[], object]:
    if name in ("train", "multirun"):
        from cardio.commands.train import main as train

        return train
    if name == "sweep":
        from cardio.commands.sweep import main as sweep

        return sweep
    if name == "evaluate":
        from cardio.commands.evaluate import main as evaluate

        return evaluate
    from cardio.commands.plot import main as plot

    return plot


def main(argv: list[str] | None = None) -> None:
    """``cardio <subcommand> [overrides...]``: run one of :data:`SUBCOMMANDS` with the rest of the line."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help") or args[0] not in SUBCOMMANDS:
        print(__doc__)
        given = f"unknown command {args[0]!r}; " if args and args[0] not in ("-h", "--help") else ""
        sys.exit(f"{given}usage: cardio {{{','.join(SUBCOMMANDS)}}} [overrides...]" if given or not args else 0)
    name, rest = args[0], args[1:]
    if name == "multirun":
        rest = ["-m", *rest]
    sys.argv = [f"cardio {name}", *rest]  # Hydra and argparse read sys.argv
    _command(name)()
