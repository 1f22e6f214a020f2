"""A study opened by name: its storage (:mod:`cardio.sweep.storage`), sampler and pruner from the sweep settings.

Every worker opens the study the same way; the first creates it, the others (and a re-run, which so resumes it)
load it.
"""

from __future__ import annotations

import importlib

import optuna

from cardio.sweep.settings import SweepConfig, SweepConfigError
from cardio.sweep.storage import asking_again, create_or_load, make_storage

PRUNERS = {
    "median": optuna.pruners.MedianPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "none": optuna.pruners.NopPruner,
}
SAMPLERS = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
}


def make_pruner(settings: SweepConfig) -> optuna.pruners.BasePruner:
    """``settings.pruner`` by name (or import path of any Optuna pruner class) with ``settings.pruner_args``."""
    if settings.pruner in PRUNERS:
        cls = PRUNERS[settings.pruner]
    elif "." in settings.pruner:
        module, _, name = settings.pruner.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
    else:
        raise SweepConfigError(
            f"sweep.pruner={settings.pruner!r} is unknown; choose one of {', '.join(PRUNERS)} "
            "or give a class path such as optuna.pruners.PatientPruner"
        )
    try:
        return cls(**settings.pruner_args)
    except TypeError as exc:
        raise SweepConfigError(f"sweep.pruner_args={settings.pruner_args} do not fit {settings.pruner}: {exc}") from exc


def make_sampler(settings: SweepConfig, seed_offset: int = 0) -> optuna.samplers.BaseSampler:
    """``settings.sampler`` by name, seeded with ``sampler_seed + seed_offset`` (distinct per worker)."""
    if settings.sampler not in SAMPLERS:
        raise SweepConfigError(f"sweep.sampler={settings.sampler!r} is unknown; choose one of {', '.join(SAMPLERS)}")
    seed = None if settings.sampler_seed is None else settings.sampler_seed + seed_offset
    return SAMPLERS[settings.sampler](seed=seed)


def open_study(settings: SweepConfig, seed_offset: int = 0) -> optuna.Study:
    """Create the study, or load it when it exists (that is how a re-run resumes), in its storage with heartbeats
    (:mod:`cardio.sweep.storage`): a trial whose worker stopped is failed and its parameters asked again."""
    storage = make_storage(
        settings.storage_url,
        settings.heartbeat_interval,
        settings.grace_period or 2 * settings.heartbeat_interval,
        asking_again(settings.max_retries),
    )
    return create_or_load(
        study_name=settings.study_name,
        storage=storage,
        sampler=make_sampler(settings, seed_offset),
        pruner=make_pruner(settings),
        direction=optuna.study.StudyDirection[settings.direction.upper()],
    )
