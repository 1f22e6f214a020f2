"""Metrics path: Logger fans out to sinks (console, CSV, ...)."""

from cardio.loggers.base import Logger, Sink
from cardio.loggers.console import ConsoleSink, print_config_tree
from cardio.loggers.csv import CSVSink

__all__ = ["CSVSink", "ConsoleSink", "Logger", "Sink", "print_config_tree"]
