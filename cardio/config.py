"""Composing ``configs/train.yaml``: the rl-zoo overlay of the env actually built, run-dir names, command lines.

**Zoo overlay.** ``configs/zoo/<algo>/<EnvId>.yaml`` holds tuned hyperparameters for one algorithm on one env id,
``<algo>`` being the agent config's ``zoo_name`` (``DQNConfig.zoo_name == "dqn"``). The root config's defaults
list says ``zoo: auto``; a defaults list can only see group choices, not ``env.id``, so composing is two passes:
compose, read ``(zoo_name, env.id)``, and when ``configs/zoo/<zoo_name>/<id>.yaml`` exists compose again with
``zoo=<zoo_name>/<id>`` added. The zoo sits before ``experiment`` in the defaults list, so the precedence is
agent/env defaults < zoo < experiment < command line. ``zoo=none`` or ``~zoo`` turns the overlay off;
``zoo=<algo>/<id>`` forces one. The composed config records the overlay applied under the top-level key
``zoo`` (``null`` when none). ``scripts/train.py`` (inside ``hydra.main``), the sweep driver and the tests all
compose through :func:`apply_zoo`.

**Run dirs.** ``hydra.run.dir`` names a run by its time, agent and env id (``${cardio.env_name:${env.id}}``:
``my_pkg.envs:Maze-v0`` -> ``Maze-v0``). :class:`ClaimRunDir`, a Hydra callback, makes the run dir (and a
multirun's sweep dir) unique: it claims the directory by creating ``<dir>/.hydra`` (``.multirun`` for a sweep dir)
with ``os.mkdir``, which fails if it exists, and on a clash tries ``<name>_1``, ``<name>_2``... so processes
started in the same second never share a dir.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from cardio.errors import ConfigError
from cardio.paths import config_dir

CONFIG_DIR = config_dir()  # the repo's configs/ in a checkout, cardio/configs in an installed wheel
"""The repository's ``configs/`` folder (``train.yaml`` and its groups)."""

AUTO_ZOO = "auto"
"""The ``zoo`` group choice that means: the overlay of ``(agent zoo_name, env.id)`` if one is shipped."""

NO_ZOO = "none"
"""The ``zoo`` group choice that turns the overlay off (as ``~zoo`` does)."""

ZOO_KEY = "zoo"
"""Top-level key of a composed config naming the zoo overlay applied (``<algo>/<EnvId>``), or ``null``."""


# ------------------------------------------------------------------------------------------------ zoo overlay
def registered_id(env_id: str) -> str:
    """The id gymnasium registers for ``env_id``: the part after ``module:`` in gymnasium's ``module:EnvId``."""
    return env_id.rpartition(":")[2]


def zoo_name(agent_node: Any) -> str | None:
    """The ``zoo_name`` class attribute of the agent config that ``agent_node._target_`` names (``None``: none)."""
    target = agent_node.get("_target_") if isinstance(agent_node, DictConfig) else None
    if not isinstance(target, str):
        return None
    from hydra.utils import get_class

    try:
        cls = get_class(target)
    except Exception as exc:  # an import error in the user's module, or a typo in _target_
        raise ConfigError(f"agent._target_={target!r} cannot be imported: {exc}") from exc
    name = getattr(cls, "zoo_name", None)
    return name if isinstance(name, str) else None


def zoo_option(cfg: DictConfig) -> str | None:
    """``<zoo_name>/<env id>`` when that zoo file exists in the config search path, else ``None``.

    Args:
        cfg: a composed config (``agent._target_`` and ``env.id`` set); Hydra must be initialised, as it is
            inside ``hydra.main`` and inside ``initialize_config_dir``.
    """
    algo = zoo_name(cfg.get("agent"))
    env_id = OmegaConf.select(cfg, "env.id", default=None)
    if algo is None or not isinstance(env_id, str) or is_offline(cfg):
        return None
    option = f"{algo}/{registered_id(env_id)}"
    group, _, name = f"{ZOO_KEY}/{option}".rpartition("/")
    loader = GlobalHydra.instance().config_loader()
    return option if name in loader.get_group_options(group) else None


def is_offline(cfg: DictConfig) -> bool:
    """Whether the runner learns from a dataset (``runner=offline``). rl-zoo's numbers tune online runs (env
    steps, ``train_freq``, ``learning_starts``): applied to an offline run they would silently turn its update
    count and batch into DQN's online schedule, so the automatic zoo overlay skips offline runs."""
    target = OmegaConf.select(cfg, "runner.schedule._target_", default="")
    return isinstance(target, str) and target.endswith("OfflineSchedule")


def apply_zoo(
    cfg: DictConfig, choice: str | None, overrides: Sequence[str], recompose: Callable[[list[str]], DictConfig]
) -> DictConfig:
    """The config with the zoo overlay of the env it builds, and the overlay recorded under ``zoo``.

    Args:
        cfg: the config as first composed (``zoo: auto`` applies nothing by itself).
        choice: the ``zoo`` group choice it was composed with: ``"auto"``, ``None`` (``~zoo``/``zoo=null``) or an
            explicit ``<algo>/<EnvId>``.
        overrides: the overrides it was composed with (the command line's).
        recompose: composes ``train.yaml`` with a list of overrides (``hydra.compose`` or the compose API).
    """
    applied = None if choice == NO_ZOO else choice
    if choice == AUTO_ZOO:
        applied = zoo_option(cfg)
        if applied is not None:
            kept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != ZOO_KEY]
            cfg = recompose([*kept, f"{ZOO_KEY}={applied}"])
    with open_dict(cfg):
        cfg[ZOO_KEY] = applied
    return cfg


def describe_zoo(cfg: DictConfig) -> str:
    """One line for the top of the log: which zoo file was applied, or why none was."""
    applied = cfg.get(ZOO_KEY)
    if applied:
        return f"zoo: configs/zoo/{applied}.yaml applied (rl-zoo hyperparameters for this agent and env id)"
    algo = zoo_name(cfg.get("agent"))
    env_id = registered_id(str(OmegaConf.select(cfg, "env.id", default="?")))
    if algo is None:
        return "zoo: none (the agent config declares no zoo_name)"
    if is_offline(cfg):
        return "zoo: none (rl-zoo numbers tune online runs; runner=offline keeps its own)"
    return f"zoo: none (no configs/zoo/{algo}/{env_id}.yaml; the agent's and env's own defaults apply)"


def compose_train(
    config_dir: str | Path = CONFIG_DIR, overrides: Sequence[str] = (), hydra_node: bool = False
) -> DictConfig:
    """``train.yaml`` composed with ``overrides`` and its zoo overlay, as ``scripts/train.py`` would see it.

    Args:
        config_dir: the folder holding ``train.yaml``.
        overrides: Hydra overrides, e.g. ``["agent=ppo", "env.id=Acrobot-v1"]``.
        hydra_node: keep the ``hydra`` node (group choices under ``hydra.runtime.choices``).
    """
    GlobalHydra.instance().clear()  # whoever composed last (a test, a Hydra app) may have left it set
    with initialize_config_dir(str(Path(config_dir).resolve()), version_base=None):

        def recompose(words: list[str]) -> DictConfig:
            return compose("train", overrides=words, return_hydra_config=True)

        cfg = recompose(list(overrides))
        choice = cfg.hydra.runtime.choices.get(ZOO_KEY)
        cfg = apply_zoo(cfg, choice, list(overrides), recompose)
    if not hydra_node:
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


# ------------------------------------------------------------------------------------------------ run dirs
def env_name(env_id: str) -> str:
    """A file-name-safe env id: ``my_pkg.envs:Maze-v0`` -> ``Maze-v0``, ``ALE/Pong-v5`` -> ``ALE-Pong-v5``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", registered_id(str(env_id))).strip("-.") or "env"


if not OmegaConf.has_resolver("cardio.env_name"):
    OmegaConf.register_new_resolver("cardio.env_name", env_name)


def claim_dir(path: str | os.PathLike[str], marker: str = ".hydra") -> Path:
    """Claim ``path`` (or ``<path>_1``, ``<path>_2``... if taken) so that of processes claiming the same name each
    gets its own directory; returns the one claimed.

    A directory is claimed by creating ``<dir>/<marker>`` with ``os.mkdir``, which fails when it exists, so exactly
    one process wins it; the directory itself may be new or exist empty (``hydra.run.dir=$(mktemp -d)``).

    Args:
        path: the directory wanted.
        marker: the subdirectory that marks a claim (``.hydra``: Hydra writes its record there anyway).
    """
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    for k in range(10_000):
        candidate = base if k == 0 else base.with_name(f"{base.name}_{k}")
        try:
            candidate.mkdir(exist_ok=True)
            if any(p.name != marker for p in candidate.iterdir()):
                continue  # another run's files
            os.mkdir(candidate / marker)
        except (FileExistsError, NotADirectoryError):  # taken, or a file of that name
            continue
        return candidate
    raise ConfigError(f"hydra.run.dir={base}: 10000 run dirs of that name exist already; choose another name")


class ClaimRunDir(Callback):
    """Hydra callback: claim a fresh ``hydra.run.dir`` (single run) or ``hydra.sweep.dir`` (multirun) before
    Hydra writes to it, with :func:`claim_dir`; the config then names the directory actually claimed."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._claim(config, "run")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._claim(config, "sweep")

    @staticmethod
    def _claim(config: DictConfig, mode: str) -> None:
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().set_config(config)  # the dir may use ${hydra:...}; run_job sets it the same way
        node = config.hydra[mode]
        marker = str(config.hydra.output_subdir or ".hydra") if mode == "run" else ".multirun"
        claimed = claim_dir(str(node.dir), marker)
        with read_write(node), open_dict(node):
            node.dir = str(claimed)
        if mode == "sweep":  # each job's config is composed again from the hydra overrides: name the claimed dir
            overrides = config.hydra.overrides
            kept = [o for o in overrides.hydra if not str(o).startswith("hydra.sweep.dir=")]
            quoted = str(claimed).replace("\\", "\\\\").replace("'", "\\'")
            with read_write(overrides), open_dict(overrides):
                overrides.hydra = [*kept, f"hydra.sweep.dir='{quoted}'"]


# ------------------------------------------------------------------------------------------------ command lines
HYDRA_FLAGS_CHECKED = ("-m", "--multirun")
"""Flags :func:`check_command_line` understands; any other flag (``--help``, ``--cfg job``...) is Hydra's alone."""


def _hydra_error(exc: Exception) -> ConfigError:
    """A Hydra composition or override error as one :class:`ConfigError` line naming the key and the choices."""
    from hydra.errors import MissingConfigException

    if isinstance(exc, MissingConfigException) and exc.options is not None and exc.missing_cfg_file:
        group, _, value = str(exc.missing_cfg_file).rpartition("/")
        names = [o for o in exc.options if not o.startswith("_")]
        if group == ZOO_KEY:  # the tuned files sit one folder down: zoo=<algo>/<EnvId>
            names += sorted(
                str(p.relative_to(CONFIG_DIR / ZOO_KEY).with_suffix(""))
                for p in (CONFIG_DIR / ZOO_KEY).glob("*/*.yaml")
            )
        options = ", ".join(names)
        return ConfigError(f"{group}={value}: no such option in configs/{group}/; choose one of: {options}")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Config search path", "provider=", "See https"))]
    return ConfigError("; ".join(lines) + " (override syntax: https://hydra.cc/docs/advanced/override_grammar/basic/)")


def command_line_jobs(words: Sequence[str], multirun: bool, max_jobs: int = 64) -> list[list[str]]:
    """The override lists of the jobs a command line runs (one unless ``-m`` sweeps), Hydra keys left out.

    Raises:
        ConfigError: an override that does not parse, or a sweep (``a,b``) without ``-m``.
    """
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(words))
    except HydraException as exc:
        raise _hydra_error(exc) from exc
    lists: list[list[str]] = []
    for override in parsed:
        if override.get_key_element().lstrip("+~").startswith("hydra"):
            continue
        if not override.is_sweep_override():
            lists.append([override.input_line or ""])
        elif not multirun:
            raise ConfigError(
                f"{override.input_line}: several values are a sweep; add -m to run one job per value "
                f"(`make multirun {override.input_line}`), or give one value"
            )
        elif override.is_discrete_sweep():
            key = override.get_key_element()
            lists.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            return []  # an interval sweep (Optuna's): the sweeper samples it, nothing to check up front
    return [list(job) for job in itertools.islice(itertools.product(*lists), max_jobs)]


def check_command_line(argv: Sequence[str], config_dir: str | Path = CONFIG_DIR) -> None:
    """Compose and validate every job of a ``scripts/train.py`` command line before Hydra starts, so a bad
    override, config group option or value prints one line and exits with code 2 before any run dir exists.

    Args:
        argv: the command line without the program name.
        config_dir: the folder holding ``train.yaml``.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from cardio.errors import report_user_errors
    from cardio.validate import validate

    words = list(argv)
    if any(w.startswith("-") and w not in HYDRA_FLAGS_CHECKED for w in words):
        return  # --help, --cfg, --config-name...: Hydra's own business
    multirun = any(w in HYDRA_FLAGS_CHECKED for w in words)
    with report_user_errors():
        for job in command_line_jobs([w for w in words if w not in HYDRA_FLAGS_CHECKED], multirun):
            try:
                cfg = compose_train(config_dir, job)
            except (HydraException, OmegaConfBaseException) as exc:
                raise _hydra_error(exc) from exc
            except ValueError as exc:  # Hydra's defaults list refuses `group=null` this way
                raise ConfigError(
                    f"{' '.join(job)}: {exc}; to drop a config group write ~<group> (e.g. ~zoo, or zoo=none)"
                ) from exc
            finally:
                GlobalHydra.instance().clear()
            validate(cfg)
