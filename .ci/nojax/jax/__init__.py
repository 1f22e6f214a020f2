"""Stands in for `jax` in `make test-nojax`: importing it fails as where the jax extra is not installed."""

WHY = "blocked by .ci/nojax (make test-nojax: the suite without the jax extra)"
raise ModuleNotFoundError(f"{__name__} is {WHY}", name=__name__)
