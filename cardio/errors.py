"""User errors: what the person running cardio can fix, reported as one line instead of a traceback.

Every error a user can cause by what they typed or by the machine they run on (a config value out of range, an
agent on a space it cannot handle, a checkpoint that does not fit, a full disk) derives from :class:`UserError`.
The entry points (``scripts/train.py``, ``scripts/sweep.py``, ``scripts/evaluate.py``) run inside
:func:`report_user_errors`: a ``UserError`` prints ``error: <message>`` on stderr and exits with
:data:`USER_ERROR_EXIT`; anything else is a bug and keeps its traceback. ``CARDIO_TRACEBACK=1`` (or Hydra's own
``HYDRA_FULL_ERROR=1``) shows the full traceback of user errors too.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

USER_ERROR_EXIT = 2
"""Exit code of a run refused for a user error (argparse's convention for bad usage)."""

TRACEBACK_VARS = ("CARDIO_TRACEBACK", "HYDRA_FULL_ERROR")
"""Environment variables that, set to anything but ``0``/empty, show the full traceback of a user error."""

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
"""``OSError`` numbers that mean the disk (or the user's quota) is full."""


class UserError(Exception):
    """Base of every error the user can fix; its message names the key or path, the value and the way out."""


class ConfigError(UserError, ValueError):
    """A config value of the wrong type or out of range, or options that cannot work together."""


class BufferError(ConfigError):
    """A transition or request that does not fit the buffer; the message names the field and both shapes."""


class ScheduleError(ConfigError):
    """Runner options that cannot work together; the message names the keys and their values."""


class DiskFullError(UserError, OSError):
    """A checkpoint or log could not be written because the disk (or quota) is full.

    Args:
        path: the file being written.
        cause: the ``OSError`` raised by the write.
    """

    def __init__(self, path: str | os.PathLike[str] | None, cause: OSError) -> None:
        where = str(path) if path is not None else "<unknown file>"
        reason = cause.strerror or str(cause)
        super().__init__(
            cause.errno,
            f"cannot write {where}: {reason} (errno {cause.errno}); free some space or point run_dir elsewhere",
        )
        self.path = Path(where)

    def __str__(self) -> str:
        return str(self.strerror)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is an ``OSError`` saying the disk or quota is full."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def show_tracebacks() -> bool:
    """Whether the user asked for full tracebacks (``CARDIO_TRACEBACK=1`` or ``HYDRA_FULL_ERROR=1``)."""
    return any(os.environ.get(var, "") not in ("", "0") for var in TRACEBACK_VARS)


def one_line(exc: BaseException) -> str:
    """``error: <message>``, the message's lines joined so a log grep finds the whole of it."""
    text = " ".join(part.strip() for part in str(exc).strip().splitlines() if part.strip())
    return f"error: {text}"


@contextmanager
def report_user_errors() -> Iterator[None]:
    """Turn a :class:`UserError` (or a disk-full ``OSError``) raised inside into one line on stderr and
    ``sys.exit(USER_ERROR_EXIT)``; other exceptions pass through with their traceback."""
    try:
        yield
    except Exception as exc:
        error = user_error_in(exc)
        if error is None and is_disk_full(exc):  # a raw ENOSPC from anywhere
            error = DiskFullError(getattr(exc, "filename", None), exc)  # type: ignore[arg-type]
        if error is None or show_tracebacks():
            raise
        print(one_line(error), file=sys.stderr, flush=True)
        sys.exit(USER_ERROR_EXIT)


def user_error_in(exc: BaseException) -> UserError | None:
    """The :class:`UserError` that ``exc`` is, or that Hydra's ``instantiate`` wrapped into its
    ``InstantiationException`` ("Error in call to target ...": a user error raised while a config part is built,
    e.g. by ``make_env``); ``None`` for anything else, which is a bug and keeps its traceback."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, UserError):
            return seen
        if type(seen).__name__ != "InstantiationException":
            return None
        seen = seen.__cause__
    return None
