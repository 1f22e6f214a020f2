"""Hydra launcher plugin of ``hydra/launcher=slurm`` (``configs/hydra/launcher/slurm.yaml``).

Hydra instantiates launchers only from the ``hydra_plugins`` namespace package, so the class lives here and the
work in :mod:`cardio.cluster.launcher`: checks before submission, preemption-safe jobs, failed jobs reported with
their id, state and log (docs/cluster.md). Importing this module imports nothing of cardio: Hydra scans every
plugin module when any Hydra app starts.
"""

from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher


class CardioSlurmLauncher(SlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher; :meth:`launch` is :func:`cardio.cluster.launcher.launch`."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from cardio.cluster.launcher import launch

        return launch(self, job_overrides, initial_job_idx)
