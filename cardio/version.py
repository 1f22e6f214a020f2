"""cardio's version and distribution name: a module of its own that imports nothing, so any layer may read it."""

__version__ = "0.1.0"
"""The one place the version is written; ``pyproject.toml`` reads it (``dynamic = ["version"]``)."""
DISTRIBUTION = "cardio-template"
"""The name on PyPI (``pip install cardio-template``); the import name stays ``cardio``."""
