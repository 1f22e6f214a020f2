"""JAX twins of the torch agents: the same configs, maths and metric names, as jitted pure functions.

Needs the optional extra ``pip install -e ".[jax]"``; nothing outside this package imports JAX, and nothing in
it imports torch. ``agent=dqn_jax``, ``agent=ppo_jax``, ``agent=sac_jax`` select them (``configs/agent/``).
"""
