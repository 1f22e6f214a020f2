"""Reading rl-baselines3-zoo's hyperparameter files: one entry per env id, ``policy_kwargs`` parsed safely.

rl-zoo keeps one YAML file per algorithm (``hyperparams/<algo>.yml``), keyed by env id, with YAML anchors and
merge keys (``<<: *mujoco-defaults``) and ``policy_kwargs`` written as a Python expression in a string
(``"dict(net_arch=[256, 256], activation_fn=nn.ReLU)"``). This module reads both without executing anything:
the expression is parsed with :mod:`ast` and only literals, lists, ``dict(...)`` calls and dotted names are
accepted; a dotted name such as ``nn.ReLU`` comes back as the string ``"nn.ReLU"``.

Shared by ``scripts/import_zoo.py`` (the translation to cardio's configs) and ``bench/zoo_heldout.py`` (SB3 run
on the very same numbers).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import yaml

NON_ENV_KEYS = ("default", "atari")
"""Top-level keys of rl-zoo's files that are not env ids: defaults for unlisted envs, and Atari's shared block."""


class UnreadableValue(ValueError):
    """A ``policy_kwargs`` string that is not a plain ``dict(...)`` of literals and dotted names."""


def load_algo(zoo_dir: str | Path, algo: str) -> dict[str, dict[str, Any]]:
    """``{env id: hyperparameters}`` from ``<zoo_dir>/hyperparams/<algo>.yml`` (or ``<zoo_dir>/<algo>.yml``).

    Merge keys are resolved by the YAML loader, so each entry holds its full set of keys.

    Raises:
        FileNotFoundError: neither path exists.
    """
    root = Path(zoo_dir)
    for path in (root / "hyperparams" / f"{algo}.yml", root / f"{algo}.yml"):
        if path.exists():
            return load_text(path.read_text())
    raise FileNotFoundError(f"no {algo}.yml under {root} or {root / 'hyperparams'} (the rl-zoo checkout)")


def load_text(text: str) -> dict[str, dict[str, Any]]:
    """:func:`load_algo` on YAML text (tests feed small snippets)."""
    data = yaml.safe_load(text) or {}
    return {str(k): dict(v or {}) for k, v in data.items()}


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _literal(node.operand)
        if isinstance(value, int | float):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True) if k is not None}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg is not None}
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_literal(node.value)}.{node.attr}"
    raise UnreadableValue(f"unsupported expression {ast.unparse(node)!r}")


def parse_expression(text: str) -> Any:
    """Evaluate rl-zoo's Python-expression strings (``policy_kwargs``, dict-valued ``normalize``) as data.

    Raises:
        UnreadableValue: anything beyond literals, lists, dicts, ``dict(...)`` and dotted names.
    """
    try:
        tree = ast.parse(" ".join(text.split()), mode="eval")
    except SyntaxError as exc:
        raise UnreadableValue(f"not a Python expression: {text!r}") from exc
    return _literal(tree.body)
