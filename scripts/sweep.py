"""Optuna sweep: the shim of ``cardio sweep`` (cardio/commands/sweep.py); ``make sweep`` runs it."""

from cardio.commands.sweep import main

if __name__ == "__main__":
    main()
