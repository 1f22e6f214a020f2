"""Imported at start-up by every Python whose ``PYTHONPATH`` holds ``.ci/nojax`` (``make test-nojax``, and the
suite's subprocesses, which inherit it): jax, jaxlib and optax then look as they do where the jax extra is not
installed. ``import jax`` raises ``ModuleNotFoundError`` and ``importlib.util.find_spec("jax")`` is ``None``."""

import sys

for name in ("jax", "jaxlib", "optax"):
    sys.modules[name] = None  # type: ignore[assignment]
