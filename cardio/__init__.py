"""cardio: a deep-RL research template. One readable file per algorithm; cardio does the rest.

Data flows one way: env -> Gatherer -> buffer -> sample -> Agent.update -> metrics -> Logger, driven by the Runner.
"""

from cardio.buffers import CircularBuffer
from cardio.gatherer import EpisodeStats, Gatherer
from cardio.loggers import Logger
from cardio.runner import Runner
from cardio.schedules import OffPolicySchedule, OnPolicySchedule
from cardio.version import DISTRIBUTION, __version__

__all__ = [
    "DISTRIBUTION",
    "CircularBuffer",
    "EpisodeStats",
    "Gatherer",
    "Logger",
    "OffPolicySchedule",
    "OnPolicySchedule",
    "Runner",
    "__version__",
]
