"""Running cardio on a SLURM cluster: multiruns and Optuna sweep workers as SLURM jobs that survive preemption.

* :mod:`~cardio.cluster.slurm`: what the cluster says (``scontrol``, ``sacct``, ``sbatch --test-only``).
* :mod:`~cardio.cluster.checks`: the launcher settings checked against the cluster before anything is submitted.
* :mod:`~cardio.cluster.jobs`: waiting for submitted jobs; a job that ends without a result is reported with its
  id, state and log.
* :mod:`~cardio.cluster.requeue`: inside a job: the run dir a requeued job continues in, and requeueing itself
  when SLURM's ``--signal`` says the time limit is near.
* :mod:`~cardio.cluster.launcher`: the Hydra launcher of ``hydra/launcher=slurm`` (``make multirun``).

The Optuna side (workers as a job array) is :mod:`cardio.sweep.slurm`. See docs/cluster.md.
"""
