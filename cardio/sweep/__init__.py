"""Sweeps: an Optuna search over cardio runs (``driver``: pruning, shared storage, workers; ``space``;
``settings``; ``pruning``) and the Hydra multirun summary (``summary``).

Nothing is imported here, so ``scripts/train.py`` loading the multirun callback does not pull in Optuna.
"""
