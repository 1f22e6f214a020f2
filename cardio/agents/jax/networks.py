"""The shared JAX pieces, as ``cardio/agents/networks.py`` is for torch: MLP init and forward over a parameter
pytree, the clipped Adam chain, target updates, random argmax tie-breaks, numpy <-> jax state conversion.

Parameters are plain pytrees (a list of ``{"w": [in, out], "b": [out]}`` layers), never modules: a twin splits
them once in ``__init__`` and jits pure functions over them (jitting a module wrapper per call is slower than
eager torch; see docs/performance.md). Initialisations match torch's so twins start from the same distribution.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

Params = list[dict[str, Any]]
"""An MLP: one ``{"w": [in, out], "b": [out]}`` dict per layer (numpy arrays from :func:`mlp_init`, jax
arrays once a jitted update has returned them)."""

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "elu": jax.nn.elu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # torch's nn.GELU default is the exact erf form
}
"""Activation names accepted in configs (``activation: tanh``), the same set as the torch twins'."""


_COMPILED: dict[tuple[Any, ...], Callable[..., Any]] = {}


def jit_once(fn: Callable[..., Any], key: tuple[Any, ...], **jit_kwargs: Any) -> Callable[..., Any]:
    """``jax.jit(fn)``, shared by every agent whose ``key`` (the pure function's name and everything it closes
    over: config, spaces) is the same, so a second agent of one configuration (a test, a sweep trial, the seeds
    of a multi-seed run) reuses the compiled code instead of tracing and compiling again.

    Args:
        fn: the pure function with its static arguments bound (``functools.partial``).
        key: hashable description of ``fn`` and what it binds, e.g. ``("dqn.update", repr(config))``.
        jit_kwargs: passed to ``jax.jit`` (``static_argnames``...).
    """
    if key not in _COMPILED:
        _COMPILED[key] = jax.jit(fn, **jit_kwargs)
    return _COMPILED[key]


def new_rngs(seed: int | None) -> tuple[np.ndarray, np.random.Generator]:
    """The agent's PRNG key and the numpy generator of its initial parameters, both from ``seed`` (fresh OS
    entropy when ``None``). Built in numpy, so that building an agent runs no XLA computation: each eager
    ``jax.random`` call compiles a small program (about 2.5 s of a DQN run's start-up went to that before its
    first env step; docs/performance.md). The key is laid out as ``jax.random.PRNGKey(seed)`` lays it out
    (threefry's ``[high 32 bits, low 32 bits]``; tests/test_jax_agents.py checks the equality).

    Returns:
        ``(key uint32 [2], generator)``: two independent streams (threefry and PCG64) from one seed.
    """
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    seed = int(seed)
    key = np.array([0 if seed < 0 else seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32)
    return key, np.random.default_rng(seed)


def orthogonal(rng: np.random.Generator, shape: tuple[int, int], gain: float) -> np.ndarray:
    """A ``[in, out]`` matrix with orthonormal rows or columns, times ``gain`` (torch's ``orthogonal_`` and
    ``jax.nn.initializers.orthogonal``: the Q of a Gaussian matrix's QR, signs fixed by R's diagonal)."""
    rows, cols = shape
    normal = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(normal)
    q *= np.sign(np.diag(r))
    return (gain * (q.T if rows < cols else q)).astype(np.float32)


def mlp_init(rng: np.random.Generator, sizes: Sequence[int], gains: Sequence[float] | None = None) -> Params:
    """Layers ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``, as float32 numpy arrays (no XLA op: see
    :func:`new_rngs`; the first jitted call moves them to the device).

    Args:
        rng: the generator the initialisation draws from.
        sizes: input width, hidden widths, output width.
        gains: ``None``: torch's ``nn.Linear`` default (weights and biases uniform in ``+-1/sqrt(fan_in)``);
            otherwise one orthogonal gain per layer and zero biases (SB3's actor-critic init).
    """
    params: Params = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        if gains is None:
            bound = 1.0 / math.sqrt(fan_in)
            w = rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32)
            b = rng.uniform(-bound, bound, (fan_out,)).astype(np.float32)
        else:
            w = orthogonal(rng, (fan_in, fan_out), gains[i])
            b = np.zeros((fan_out,), np.float32)
        params.append({"w": w, "b": b})
    return params


def stacked(trees: Sequence[Any]) -> Any:
    """Trees of one structure stacked leaf by leaf on a new leading axis (SAC's ``n_critics`` critics)."""
    return jax.tree.map(lambda *leaves: np.stack(leaves), *trees)


def optimiser_state(tx: optax.GradientTransformation, params: Any) -> Any:
    """``tx.init(params)`` for a chain built by :func:`adam`, in numpy: that state is all zeros (the step count
    and both moment estimates), and ``jax.eval_shape`` gives its structure by tracing, without compiling."""
    return jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), jax.eval_shape(tx.init, params))


def mlp(
    params: Params,
    x: jax.Array,
    activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
    activate_last: bool = False,
) -> jax.Array:
    """``Linear -> activation`` for every layer; the last is linear unless ``activate_last`` (a torso whose
    features feed a head). No layers: ``x`` itself."""
    for i, layer in enumerate(params):
        x = x @ layer["w"] + layer["b"]
        if activate_last or i < len(params) - 1:
            x = activation(x)
    return x


def adam(max_grad_norm: float | None = None, eps: float = 1e-8) -> optax.GradientTransformation:
    """Adam's moment estimates after an optional global-norm clip, without the learning rate: :func:`apply`
    multiplies by it, so a scheduled rate (PPO's ``linear``) is an argument of the jitted update, not state.
    Matches ``torch.optim.Adam`` (bias-corrected, ``eps`` outside the square root) and ``clip_grad_norm_``."""
    adam_moments = optax.scale_by_adam(eps=eps)
    if max_grad_norm is None:
        return adam_moments
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), adam_moments)


def apply(
    tx: optax.GradientTransformation, params: Any, opt_state: Any, grads: Any, lr: float | jax.Array
) -> tuple[Any, Any]:
    """One optimiser step ``params <- params - lr * tx(grads)``; returns ``(params, opt_state)``."""
    updates, opt_state = tx.update(grads, opt_state, params)
    return jax.tree.map(lambda p, u: p - lr * u, params, updates), opt_state


def global_norm(tree: Any) -> jax.Array:
    """The L2 norm of all leaves together (what the clip compares with ``max_grad_norm``)."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def polyak(target: Any, online: Any, tau: float) -> Any:
    """Soft target update ``target <- tau * online + (1 - tau) * target`` (a hard copy is ``target = online``)."""
    return jax.tree.map(lambda t, o: t + tau * (o - t), target, online)


def argmax_random_ties(key: jax.Array, values: jax.Array) -> jax.Array:
    """Row-wise argmax over the last axis, choosing uniformly among tied maxima (``jnp.argmax`` takes the first,
    which biases a fresh or quantised Q-head toward action 0)."""
    is_max = values == values.max(axis=-1, keepdims=True)
    return jnp.argmax(jnp.where(is_max, jax.random.uniform(key, values.shape), -1.0), axis=-1)


REPLAY_KEYS = ("obs", "next_obs", "action", "reward", "terminated", "discount", "weight")
"""The columns of a replay batch an off-policy update reads (``discount``: n-step; ``weight``: prioritized)."""


def replay_batch(batch: dict[str, Any]) -> dict[str, Any]:
    """The :data:`REPLAY_KEYS` columns of ``batch`` (extras and ``truncated`` never reach the jitted update)."""
    return {k: batch[k] for k in REPLAY_KEYS if k in batch}


def to_numpy(tree: Any) -> Any:
    """The pytree with every array as a numpy copy: what ``state_dict`` returns and checkpoints pickle."""
    return jax.tree.map(np.array, tree)


def to_jax(tree: Any) -> Any:
    """Inverse of :func:`to_numpy` (the same structure, jax arrays)."""
    return jax.tree.map(jnp.asarray, tree)
