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

Params = list[dict[str, jax.Array]]
"""An MLP: one ``{"w": [in, out], "b": [out]}`` dict per layer."""

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


def new_key(seed: int | None) -> jax.Array:
    """The agent's PRNG key: from ``seed``, or from fresh OS entropy when ``seed`` is ``None``."""
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    return jax.random.PRNGKey(seed)


def mlp_init(key: jax.Array, sizes: Sequence[int], gains: Sequence[float] | None = None) -> Params:
    """Layers ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``.

    Args:
        key: PRNG key consumed by the initialisation.
        sizes: input width, hidden widths, output width.
        gains: ``None``: torch's ``nn.Linear`` default (weights and biases uniform in ``+-1/sqrt(fan_in)``);
            otherwise one orthogonal gain per layer and zero biases (SB3's actor-critic init).
    """
    params: Params = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        key, k_w, k_b = jax.random.split(key, 3)
        if gains is None:
            bound = 1.0 / math.sqrt(fan_in)
            w = jax.random.uniform(k_w, (fan_in, fan_out), minval=-bound, maxval=bound)
            b = jax.random.uniform(k_b, (fan_out,), minval=-bound, maxval=bound)
        else:
            w = jax.nn.initializers.orthogonal(gains[i])(k_w, (fan_in, fan_out), jnp.float32)
            b = jnp.zeros((fan_out,))
        params.append({"w": w, "b": b})
    return params


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
