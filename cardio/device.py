"""The ``device`` key: ``cpu``, ``cuda`` (``cuda:1``...) or ``auto``, resolved before anything is built.

``device=auto`` becomes ``cuda`` when the agent's framework sees a CUDA GPU and ``cpu`` otherwise, so one config
trains on a laptop and on a GPU node alike; the resolved name is what ``config.yaml`` and ``provenance.json``
record. ``device=cuda`` asked for where there is no GPU is refused in one line naming the key, instead of a
traceback from deep inside the first ``.to(device)``.

torch agents ask ``torch.cuda``; the JAX twins (``cardio/agents/jax/``) ask JAX for a ``gpu`` backend (a CUDA
jax build: ``pip install "cardio-template[jax-cuda]"``). ``device=cpu`` on a CUDA jax build pins JAX to the CPU
(``JAX_PLATFORMS=cpu``, set before JAX starts), so the numbers of a CPU run do not depend on which jax is
installed. Nothing here imports torch or JAX for ``device=cpu``.
"""

from __future__ import annotations

import os
import sys

from cardio.errors import ConfigError

AUTO = "auto"
"""The ``device`` value that picks ``cuda`` when a GPU is visible, else ``cpu``."""


def is_jax_agent(agent_target: str) -> bool:
    """Whether an agent config (its ``_target_``) builds a JAX agent: one of cardio's twins, or a user's agent
    whose module path names jax (``my_pkg.jax_agents.MyConfig``)."""
    module = agent_target.rpartition(".")[0]
    parts = module.split(".")
    return "jax" in parts or any(p.startswith("jax_") for p in parts) or "_jax" in module


def torch_gpus() -> int:
    """CUDA devices torch sees (0 on a CPU build or a machine without a GPU)."""
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def jax_gpus() -> int:
    """GPU devices JAX sees (0 with the CPU-only jaxlib, or a CUDA build without a GPU)."""
    try:
        import jax

        return len(jax.devices("gpu"))
    except (RuntimeError, ImportError):  # "Unknown backend gpu" / no jax
        return 0


def resolve_device(device: str, agent_target: str) -> str:
    """``device`` checked and made concrete for the agent that ``agent_target`` names.

    Args:
        device: the config's ``device``: ``cpu``, ``cuda``, ``cuda:<index>`` or ``auto``.
        agent_target: the agent config's ``_target_`` (decides whether torch or JAX is asked).

    Returns:
        ``cpu`` or the ``cuda[:<index>]`` asked for (``auto``: ``cuda`` when a GPU is visible).

    Raises:
        ConfigError: a device name that is none of those, ``cuda`` without a visible GPU, or an index past the
            GPUs there are.
    """
    jax = is_jax_agent(agent_target)
    if device == "cpu":
        if jax and "jax" not in sys.modules:  # a CUDA jaxlib would otherwise take the GPU for a CPU run
            os.environ.setdefault("JAX_PLATFORMS", "cpu")
        return device
    kind, colon, index = device.partition(":")
    if kind not in ("cuda", AUTO) or (colon and (kind == AUTO or not index.isdigit())):  # "cuda:" too
        raise ConfigError(f"device={device!r}: expected cpu, cuda, cuda:<index> (cuda:1) or auto")
    framework = "JAX" if jax else "torch"
    gpus = jax_gpus() if jax else torch_gpus()
    if kind == AUTO:
        return "cuda" if gpus else "cpu"
    if not gpus:
        extra = '"cardio-template[jax-cuda]"' if jax else "a CUDA torch build (make train TORCH=...)"
        raise ConfigError(
            f"device={device!r}: {framework} sees no CUDA GPU on this machine (a CPU-only build, or no GPU "
            f"given to this job); use device=cpu, or device=auto to take a GPU only where there is one "
            f"(GPU runs need {extra})"
        )
    if index and int(index) >= gpus:
        raise ConfigError(f"device={device!r}: {framework} sees {gpus} GPU(s), cuda:0 to cuda:{gpus - 1}")
    return device
