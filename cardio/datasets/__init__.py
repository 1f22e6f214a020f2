"""Offline data: Minari datasets in and out of cardio's buffers (``cardio.datasets.minari``)."""
