"""Checkpoint files: atomic writes, validated reads, env state for exact resume, and stop-on-signal.

Writes go to a temporary file in the same directory, are fsynced, then renamed over the target: a crash or
Ctrl-C mid-write leaves the previous checkpoint intact (``os.replace`` is atomic on POSIX).

A runner checkpoint is a dict ``{"kind": "cardio.runner", "version": FORMAT_VERSION, "meta": {...}, ...}``.
``meta`` names the agent class, env id, spaces, env count, buffer and schedule, so loading it into a runner
built differently fails with a message naming what differs, before anything is changed (see docs/checkpoints.md).

Env state (what makes a resumed run exact): for a ``SyncVectorEnv`` the sub-envs are pickled (their physics
state, ``np_random`` and wrapper counters such as ``TimeLimit``'s elapsed steps) together with the vector env's
autoreset bookkeeping and its action spaces' RNGs. Envs that do not pickle, envs that pickle only their
constructor arguments (``EzPickle``: Box2D, MuJoCo) and ``AsyncVectorEnv`` are not restored: on load they are
reset instead, so the resumed run continues correctly but not bit-for-bit (a warning says so).
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

import gymnasium as gym
from gymnasium.utils import EzPickle

from cardio.errors import DiskFullError, UserError, is_disk_full

FORMAT_VERSION = 2
"""Bumped when the layout of a runner checkpoint changes; older files are refused with a clear error.
Version 2: a plain pickle (version 1 was ``torch.save``), so a run without torch never imports it."""

CHECKPOINT_NAME = "last.ckpt"
"""File name the runner writes in its ``checkpoint_dir`` (periodically, at the end, and on SIGINT/SIGTERM)."""


BEST_NAME = "best.ckpt"
"""File name the runner writes in its ``checkpoint_dir`` after each evaluation that beats every earlier one
(``eval/mean_reward``); a full checkpoint like ``last.ckpt``, so it resumes and evaluates the same way."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be read or does not match what loads it."""


class Interrupted(Exception):
    """Training stopped by a signal of :data:`STOP_SIGNALS` (SIGINT, SIGTERM, SIGUSR1/2) after the checkpoint was
    written.

    Args:
        signum: the signal number; the process should exit with ``128 + signum`` (130 for Ctrl-C).
        checkpoint: the checkpoint written on the way out (``None`` when the runner has no ``checkpoint_dir``).
    """

    def __init__(self, signum: int, checkpoint: Path | None) -> None:
        name = signal.Signals(signum).name
        where = f"checkpoint written to {checkpoint}" if checkpoint is not None else "no checkpoint_dir set"
        super().__init__(f"training stopped by {name}; {where}")
        self.signum = signum
        self.checkpoint = checkpoint

    @property
    def exit_code(self) -> int:
        """``128 + signum``: the shell convention (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


# ------------------------------------------------------------------------------------------------ files
def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    A crash or Ctrl-C mid-write leaves the previous file intact (``os.replace`` is atomic on POSIX) and no
    temporary file behind. Checkpoints and saved buffers both go through here.

    Args:
        path: target file; parent directories are created.
        write: writes the whole content to the binary file it is given.

    Raises:
        DiskFullError: the disk or quota filled up while writing (the previous file is intact).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; a checkpoint is as readable as the run dir
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(exc):
            assert isinstance(exc, OSError)
            raise DiskFullError(path, exc) from exc
        raise
    return path


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Pickle ``obj`` to ``path`` atomically (see :func:`atomic_write`); returns the path.

    A plain pickle rather than ``torch.save``: it holds torch tensors and numpy/JAX-converted arrays alike, and
    writing or reading it imports torch only when the state holds tensors. Like any pickle, loading it can run
    code: load resume checkpoints you trust (docs/checkpoints.md).

    Args:
        obj: anything picklable (torch tensors included).
        path: target file; parent directories are created.
    """
    return atomic_write(path, lambda f: pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL))


def resolve(path: str | os.PathLike[str]) -> Path:
    """The checkpoint file for ``path``: the file itself, or ``<run dir>/last.ckpt`` for a run directory.

    Raises:
        CheckpointError: nothing to resume from at ``path``.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        candidate = path / CHECKPOINT_NAME
        if not candidate.is_file():
            raise CheckpointError(
                f"run dir {path} has no {CHECKPOINT_NAME}; was it trained with runner.checkpoint_dir set? "
                f"Pass the checkpoint file itself if it lives elsewhere"
            )
        return candidate
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file or run dir at {path}")
    return path


def load(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """Read a checkpoint written by :func:`atomic_save` whose ``"kind"`` entry equals ``kind``.

    Args:
        path: checkpoint file, or a run dir holding ``last.ckpt``.
        kind: expected ``"kind"`` entry, e.g. ``"cardio.runner"``.

    Raises:
        CheckpointError: missing, truncated or foreign file, another kind, or a newer/older format version.
    """
    path = resolve(path)
    try:
        with open(path, "rb") as f:
            if f.read(4) == b"PK\x03\x04":  # a zip: torch.save's format, cardio's before version 2
                raise CheckpointError(
                    f"{path} is a torch.save file (cardio checkpoint format 1, or not cardio's); this cardio "
                    f"reads format {FORMAT_VERSION}: load it with the cardio version that wrote it"
                )
            f.seek(0)
            state = pickle.load(f)
    except CheckpointError:
        raise
    except Exception as exc:  # truncated or foreign file
        raise CheckpointError(f"checkpoint {path} is corrupt or not a cardio checkpoint: {exc}") from exc
    if not isinstance(state, dict) or state.get("kind") != kind:
        found = state.get("kind") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is not a {kind!r} checkpoint (found {found!r})")
    version = state.get("version", 0)
    if kind == "cardio.runner" and version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version}, this cardio reads version {FORMAT_VERSION}; "
            f"load it with the cardio version that wrote it"
        )
    return state


def check_meta(saved: dict[str, Any], current: dict[str, Any], path: str | os.PathLike[str] | None = None) -> None:
    """Raise :class:`CheckpointError` listing every ``meta`` entry that differs between checkpoint and runner.

    Args:
        saved: ``meta`` of the checkpoint.
        current: ``meta`` of the runner about to load it.
        path: the file, for the message.
    """
    diffs = [
        f"{key}: checkpoint has {saved.get(key)!r}, this run has {current.get(key)!r}"
        for key in sorted(set(saved) | set(current))
        if saved.get(key) != current.get(key)
    ]
    if diffs:
        where = f" {path}" if path is not None else ""
        raise CheckpointError(
            f"checkpoint{where} was written by a differently built run:\n  "
            + "\n  ".join(diffs)
            + "\nbuild the runner from the run's saved config.yaml (scripts/train.py resume=<run dir> does)"
        )


def check_structure(saved: Any, current: Any, where: str) -> None:
    """Raise :class:`CheckpointError` if two state trees differ in keys, or arrays/tensors in shape or dtype.

    Args:
        saved: a state tree from the checkpoint.
        current: the same state from the live object.
        where: the path for the message, e.g. ``"agent"``.
    """
    if isinstance(current, dict):
        if not current and isinstance(saved, dict):  # filled lazily (an optimiser's state before its first step)
            return
        if not isinstance(saved, dict) or set(saved) != set(current):
            have = sorted(map(str, saved)) if isinstance(saved, dict) else type(saved).__name__
            raise CheckpointError(f"checkpoint {where} has keys {have}, expected {sorted(map(str, current))}")
        for key in current:
            check_structure(saved[key], current[key], f"{where}.{key}")
    elif hasattr(current, "shape") and hasattr(current, "dtype"):
        if not hasattr(saved, "shape") or tuple(saved.shape) != tuple(current.shape) or saved.dtype != current.dtype:
            got = (tuple(saved.shape), saved.dtype) if hasattr(saved, "shape") else type(saved).__name__
            raise CheckpointError(
                f"checkpoint {where} is {got}, expected {(tuple(current.shape), current.dtype)}: "
                f"was it written with other network sizes or another env?"
            )


# ------------------------------------------------------------------------------------------------ env state
_SYNC_FIELDS = ("_env_obs", "_observations", "_rewards", "_terminations", "_truncations", "_autoreset_envs")


def _layers(env: gym.Env) -> list[gym.Env]:
    """The env and every env it wraps, outermost first."""
    layers = [env]
    while isinstance(layers[-1], gym.Wrapper):
        layers.append(layers[-1].env)
    return layers


def env_state(env: gym.vector.VectorEnv) -> dict[str, Any] | None:
    """The restorable state of a vector env, or ``None`` when it cannot be captured (see module docstring).

    Args:
        env: the vector env (as held by the gatherer).
    """
    if not isinstance(env, gym.vector.SyncVectorEnv):
        return None
    # EzPickle envs (Box2D, MuJoCo, CarRacing) pickle their constructor arguments, not their state.
    if any(isinstance(layer, EzPickle) for sub in env.envs for layer in _layers(sub)):
        return None
    try:
        return {
            "envs": pickle.dumps(env.envs),
            "fields": pickle.dumps({k: getattr(env, k) for k in _SYNC_FIELDS if hasattr(env, k)}),
            "spaces": pickle.dumps((env.action_space, env.single_action_space)),
        }
    except Exception:  # Box2D/MuJoCo handles, open renderers...
        return None


def load_env_state(env: gym.vector.VectorEnv, state: dict[str, Any]) -> None:
    """Put the state from :func:`env_state` back into ``env`` (the same kind and number of envs).

    Args:
        env: the vector env to restore into.
        state: from :func:`env_state` (not ``None``).

    Raises:
        CheckpointError: the state does not fit this env.
    """
    envs = pickle.loads(state["envs"])
    if not isinstance(env, gym.vector.SyncVectorEnv) or len(envs) != env.num_envs:
        raise CheckpointError(f"env state holds {len(envs)} sub-envs, this env is {type(env).__name__}")
    fields = pickle.loads(state["fields"])
    action_space, single_action_space = pickle.loads(state["spaces"])
    old = env.envs
    env.envs = envs
    for key, value in fields.items():
        setattr(env, key, value)
    env.action_space, env.single_action_space = action_space, single_action_space
    for sub in old:
        sub.close()


# ------------------------------------------------------------------------------------------------ signals
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
"""What :func:`stop_on_signal` catches: Ctrl-C, SIGTERM (``kill``; SLURM's preemption, ``scancel``, ``scontrol
requeue``) and SIGUSR1/SIGUSR2 (SLURM's ``--signal`` ahead of a job's time limit; cardio/cluster/requeue.py)."""


class StopFlag:
    """Set by a signal of :data:`STOP_SIGNALS` while :func:`stop_on_signal` is active; the runner checks it between
    steps."""

    def __init__(self) -> None:
        self.signum: int | None = None


@contextmanager
def stop_on_signal(signums: tuple[int, ...] = STOP_SIGNALS) -> Iterator[StopFlag]:
    """Turn the first signal of ``signums`` into a flag, so the loop can checkpoint at a step boundary and stop.

    A second signal of the same kind raises ``KeyboardInterrupt`` at once (the user insists). Another kind while
    one is pending changes nothing: the checkpoint is already coming (SLURM may send SIGTERM right after its
    time-limit SIGUSR2). Outside the main thread (signal handlers cannot be installed there) the flag simply never
    gets set.

    Args:
        signums: signals to catch (default :data:`STOP_SIGNALS`).
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if flag.signum == signum:
            raise KeyboardInterrupt
        if flag.signum is not None:
            return
        flag.signum = signum
        print(
            f"{signal.Signals(signum).name} received: checkpointing and stopping after this step "
            f"(send it again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


# ------------------------------------------------------------------------------------------------ resume
RESUME_OVERRIDABLE = ("runner.total_steps", "logger", "device", "torch_threads")
"""Config keys a resumed run may change on the command line (everything else must match the saved run)."""


def rebase_run_dir(saved: Any, run_dir: Path) -> Any:
    """A saved run config whose run dir was copied or moved to ``run_dir``: every path it holds inside its old run
    dir (``run_dir`` itself, ``runner.checkpoint_dir``, logger dirs; ``config.yaml`` holds them resolved) now
    points into ``run_dir``, so a resumed copy never writes its checkpoints into the dir it was copied from.

    Args:
        saved: the run's saved ``config.yaml`` (a DictConfig).
        run_dir: where that ``config.yaml`` lies now.
    """
    from omegaconf import OmegaConf

    old = str(saved.get("run_dir") or "").rstrip("/")
    if not old or Path(old).resolve() == run_dir.resolve():
        return saved

    def rebase(value: Any) -> Any:
        if isinstance(value, str) and (value.rstrip("/") == old or value.startswith(old + "/")):
            return str(run_dir) + value.rstrip("/")[len(old) :]
        if isinstance(value, dict):
            return {k: rebase(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rebase(v) for v in value]
        return value

    return OmegaConf.create(rebase(OmegaConf.to_container(saved, resolve=False)))


COPIED_ID_SUFFIX = ".copied.txt"
"""A forked copy's W&B run id file is kept aside as ``wandb_run_id.copied.txt`` (see :func:`fork_copied_run`)."""


def fork_copied_run(run_dir: Path) -> list[str]:
    """Before resuming ``run_dir``: if it is a copy of a run dir still on disk (its ``config.yaml`` names that
    other dir, which holds the same ``wandb_run_id.txt``), the copy is a fork. Its W&B run id moves aside
    (``wandb_run_id.copied.txt``), so the fork logs to a new W&B run instead of into the original's, where the
    two histories would merge once both continue. The same for every ``seed_<s>`` dir of a ``seeds=[...]`` run.

    Returns:
        One line per run id moved aside, for the log.
    """
    from omegaconf import OmegaConf

    lines = []
    for one in [run_dir, *sorted(run_dir.glob("seed_*"))]:
        id_file, config = one / "wandb_run_id.txt", one / "config.yaml"
        if not (id_file.is_file() and config.is_file()):
            continue
        saved = OmegaConf.select(OmegaConf.load(config), "run_dir", default=None)
        old = Path(str(saved)) if saved else one
        theirs = old / id_file.name
        if old.resolve() == one.resolve() or not theirs.is_file():
            continue
        if theirs.read_text().strip() == id_file.read_text().strip():
            id_file.rename(one / id_file.name.replace(".txt", COPIED_ID_SUFFIX))
            lines.append(
                f"{one} is a copy of {old}, which is still there: it logs to a new W&B run, not to the original's "
                f"{theirs.read_text().strip()} (kept in {id_file.stem}{COPIED_ID_SUFFIX})"
            )
    return lines


def resume_config(cfg: Any, overrides: list[str]) -> tuple[Any, Path]:
    """The config to resume with: the run's saved ``config.yaml``, plus the overrides it allows.

    ``cfg.resume`` names a run dir (its ``last.ckpt``) or a checkpoint file whose directory holds the run's
    ``config.yaml``; the run dir of a ``seeds=[...]`` run holds no ``last.ckpt`` of its own (each
    ``seed_<s>/`` does), so the "checkpoint" returned for it is the run dir itself (cardio/multiseed.py loads
    every seed). The resumed run writes to the same run dir (CSV/JSONL appended after the checkpoint's step).
    Command-line overrides of :data:`RESUME_OVERRIDABLE` keys (e.g. ``runner.total_steps=2e5`` to train longer,
    ``logger=[console,wandb]``) are applied; overriding any other key to a different value is refused.

    Args:
        cfg: the freshly composed config (a DictConfig with ``resume`` set).
        overrides: the command line's overrides, e.g. ``HydraConfig.get().overrides.task``.

    Returns:
        ``(config, checkpoint file)``.

    Raises:
        CheckpointError: no checkpoint or ``config.yaml`` there, an override that would change the run, or a
            ``seeds`` list other than the resumed run's.
    """
    from omegaconf import OmegaConf

    target = Path(str(cfg.resume)).expanduser()
    many = target.is_dir() and not (target / CHECKPOINT_NAME).is_file() and (target / "config.yaml").is_file()
    saved_seeds = OmegaConf.select(OmegaConf.load(target / "config.yaml"), "seeds", default=None) if many else None
    ckpt = target if saved_seeds is not None else resolve(target)
    run_dir = target if target.is_dir() else ckpt.parent
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        raise CheckpointError(
            f"resume={target}: no config.yaml in {run_dir}; pass the run dir that scripts/train.py wrote"
        )
    saved = rebase_run_dir(OmegaConf.load(saved_path), run_dir)
    given_seeds, run_seeds = cfg.get("seeds"), OmegaConf.select(saved, "seeds", default=None)
    if any(o.split("=", 1)[0].lstrip("+~") == "seeds" for o in overrides) and given_seeds != run_seeds:
        shown = None if given_seeds is None else list(given_seeds)
        theirs = None if run_seeds is None else list(run_seeds)
        way_out = "omit seeds= to resume them all" if theirs is not None else "omit seeds= (it is a single-seed run)"
        raise CheckpointError(f"resume={target}: seeds={shown} differs from the run's seeds={theirs}; {way_out}")
    cfg = cfg.copy()
    cfg.run_dir = str(run_dir)  # so ${run_dir} in any overridden group points at the resumed run
    refused = []
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        if key == "resume" or key.startswith("hydra"):
            continue
        mine = OmegaConf.select(cfg, key, default=None)
        if key in RESUME_OVERRIDABLE or key.split(".")[0] == "logger":
            OmegaConf.update(
                saved,
                key,
                OmegaConf.to_container(mine, resolve=True) if OmegaConf.is_config(mine) else mine,
                force_add=True,
                merge=False,
            )
        elif mine != OmegaConf.select(saved, key, default=None):
            refused.append(f"{key}: saved {OmegaConf.select(saved, key, default=None)!r}, given {mine!r}")
    if refused:
        raise CheckpointError(
            f"resume={target} would change the run's config:\n  " + "\n  ".join(refused) + "\nonly "
            f"{', '.join(RESUME_OVERRIDABLE)} may change on resume; start a new run for anything else"
        )
    saved.run_dir = str(run_dir)
    saved.resume = str(target)
    return saved, ckpt
