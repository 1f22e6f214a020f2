"""cardio: a deep-RL research template. One readable file per algorithm; cardio does the rest.

Data flows one way: env -> Gatherer -> buffer -> sample -> Agent.update -> metrics -> Logger, driven by the Runner.
"""

from cardio.buffers import CircularBuffer
from cardio.gatherer import EpisodeStats, Gatherer
from cardio.loggers import Logger
from cardio.runner import Runner
from cardio.schedules import OffPolicySchedule, OnPolicySchedule

__version__ = "0.1.0"
"""The one place the version is written; ``pyproject.toml`` reads it (``dynamic = ["version"]``)."""
DISTRIBUTION = "cardio-template"
"""The name on PyPI (``pip install cardio-template``); the import name stays ``cardio``."""
__all__ = [
    "CircularBuffer",
    "EpisodeStats",
    "Gatherer",
    "Logger",
    "OffPolicySchedule",
    "OnPolicySchedule",
    "Runner",
]
