"""Metrics path: Logger fans out to sinks (console, CSV, JSONL, TensorBoard, W&B)."""

from cardio.loggers.base import Logger, Sink
from cardio.loggers.console import ConsoleSink, print_config_tree
from cardio.loggers.csv import CSVSink
from cardio.loggers.jsonl import JSONLSink
from cardio.loggers.tensorboard import TensorBoardSink
from cardio.loggers.wandb import WandbSink

__all__ = [
    "CSVSink",
    "ConsoleSink",
    "JSONLSink",
    "Logger",
    "Sink",
    "TensorBoardSink",
    "WandbSink",
    "print_config_tree",
]
