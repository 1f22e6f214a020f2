"""Command lines that read like make variables: ``make plot runs=outputs/multirun/x metric=eval/mean_reward``.

The Makefile forwards its ``key=value`` words to the scripts unchanged; :func:`make_style` turns the ones naming
an option into ``--key value`` for argparse, so ``scripts/plot.py runs=a metric=m`` and
``scripts/plot.py a --metric m`` mean the same.
"""

from __future__ import annotations

from collections.abc import Sequence


def make_style(argv: Sequence[str], options: Sequence[str], positional: str | None = None) -> list[str]:
    """Translate ``key=value`` words whose key is in ``options`` (or is ``positional``) for argparse.

    Args:
        argv: the raw arguments (without the program name).
        options: option names without dashes; ``key=value`` becomes ``--key value``.
        positional: the name of the positional argument; ``positional=value`` becomes plain ``value``.
    """
    out: list[str] = []
    for word in argv:
        key, sep, value = word.partition("=")
        if sep and not word.startswith("-") and key == positional:
            out.append(value)
        elif sep and not word.startswith("-") and key in options:
            out += [f"--{key.replace('_', '-')}", value]
        else:
            out.append(word)
    return out
