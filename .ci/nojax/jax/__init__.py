"""Stands in for `jax` in `make test-nojax`: importing it fails as it does where the jax extra is not installed."""

raise ModuleNotFoundError("jax is blocked by .ci/nojax (make test-nojax: the suite as without the jax extra)", name="jax")
