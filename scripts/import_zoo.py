"""Import rl-baselines3-zoo's tuned hyperparameters as cardio configs.

    python scripts/import_zoo.py <rl-zoo checkout> [--commit SHA] [--algos dqn ppo ...] [--check]

Reads ``hyperparams/<algo>.yml`` of a local rl-zoo checkout (no network) for cardio's algorithms and writes, per
entry, ``configs/zoo/<algo>/<EnvId>.yaml`` (applied automatically when ``agent=<algo>`` builds env ``<EnvId>``), the
``configs/env/<Name>.yaml`` it needs when cardio has none, ``docs/zoo.md`` (the pairs with rl-zoo's published score
from its ``benchmark.md``, and the import report) and ``docs/envs.md`` (every env config). Every rl-zoo key is
translated to cardio's key and unit (table ``TRANSLATIONS`` below); an entry with a key that cannot be translated,
or whose env gymnasium cannot build here, is refused as a whole, listed on stderr and in ``docs/zoo.md`` with the
reasons, and nothing is written for it: never a silent drop. Keys rl-zoo leaves out take SB3's defaults, which are
cardio's agent defaults; the replay and schedule keys (where cardio's agent configs differ from SB3) are always
written out.

MuJoCo entries are tuned on ``-v4``; gymnasium's ``-v5`` fixes bugs of ``-v4`` and is the version cardio's env configs
build, so each is also written for ``-v5`` (the docs say so). ``--check`` writes nothing and exits 1 when the files
on disk differ from what the import would write.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------------------- reading
# rl-zoo keeps one YAML file per algorithm, keyed by env id, with anchors and merge keys (``<<: *mujoco-defaults``)
# and ``policy_kwargs`` written as a Python expression in a string. Both are read without executing anything: the
# expression is parsed with :mod:`ast`, and only literals, lists, ``dict(...)`` calls and dotted names are
# accepted (``nn.ReLU`` comes back as the string ``"nn.ReLU"``). ``bench/zoo_heldout.py`` reads entries here too.

NON_ENV_KEYS = ("default",)
"""Top-level keys of rl-zoo's files that are not env ids: defaults for unlisted envs."""

ATARI = "atari"
"""rl-zoo's block for every Atari game, written as ``configs/zoo/<algo>/atari.yaml`` (``cardio.config`` applies it
to any Atari id that has no file of its own)."""

ATARI_GAMES = ("PongNoFrameskip-v4", "BreakoutNoFrameskip-v4")
"""Games with a named env config (``env=Pong``, ``env=Breakout``); any other is ``env=atari env.id=<id>``."""


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


ALGOS = ("dqn", "ppo", "a2c", "sac", "td3", "ddpg")
OFF_POLICY = ("dqn", "sac", "td3", "ddpg")

SB3_OFF_POLICY_DEFAULTS: dict[str, dict[str, Any]] = {
    "dqn": {"buffer_size": 1_000_000, "learning_starts": 100, "batch_size": 32, "train_freq": 4, "gradient_steps": 1},
    "sac": {"buffer_size": 1_000_000, "learning_starts": 100, "batch_size": 256, "train_freq": 1, "gradient_steps": 1},
    "td3": {"buffer_size": 1_000_000, "learning_starts": 100, "batch_size": 256, "train_freq": 1, "gradient_steps": 1},
    "ddpg": {"buffer_size": 1_000_000, "learning_starts": 100, "batch_size": 256, "train_freq": 1, "gradient_steps": 1},
}
"""SB3's replay and schedule defaults per algorithm: written out when rl-zoo is silent, because cardio's agent
configs start from other values (e.g. ``learning_starts: 256``)."""

SB3_ON_POLICY_DEFAULTS: dict[str, dict[str, Any]] = {"ppo": {"n_steps": 2048}, "a2c": {"n_steps": 5}}

ACTIVATIONS = {"ReLU": "relu", "Tanh": "tanh", "ELU": "elu", "GELU": "gelu"}
"""torch activation classes (``nn.ReLU``...) -> cardio's ``agent.activation`` names."""

NOISE_TYPES = {"normal": "normal", "ornstein-uhlenbeck": "ou"}


class Refused(ValueError):
    """A key of an entry that cardio cannot express; the message says which and why."""


Settings = dict[str, Any]
"""Dotted cardio key -> value, e.g. ``{"agent.lr": 1e-3, "runner.schedule.n_steps": 8}``."""


def _number(value: Any) -> float:
    return float(value)


def _schedule(key: str, schedule_key: str) -> Callable[[str, Any, dict[str, Any]], Settings]:
    """``0.001`` or ``lin_0.001`` -> the agent's value (+ its linear schedule)."""

    def translate(algo: str, value: Any, entry: dict[str, Any]) -> Settings:
        if isinstance(value, str):
            if not value.startswith("lin_"):
                raise Refused(f"{value!r}: only constants and lin_<x> schedules are known")
            return {key: float(value[4:]), schedule_key: "linear"}
        return {key: _number(value)}

    return translate


def _to(key: str, convert: Callable[[Any], Any] = lambda v: v) -> Callable[[str, Any, dict[str, Any]], Settings]:
    return lambda algo, value, entry: {key: convert(value)}


def _batch_size(algo: str, value: Any, entry: dict[str, Any]) -> Settings:
    # off-policy: transitions per update (the runner samples them); PPO: the minibatch size (the agent's)
    return {("runner.schedule.batch_size" if algo in OFF_POLICY else "agent.batch_size"): int(value)}


def _train_freq(algo: str, value: Any, entry: dict[str, Any]) -> Settings:
    if isinstance(value, list | tuple):
        if len(value) != 2 or value[1] not in ("step", "episode"):
            raise Refused(f"{value!r}: expected [n, 'step'] or [n, 'episode']")
        return {"runner.schedule.train_freq": int(value[0]), "runner.schedule.train_freq_unit": value[1]}
    return {"runner.schedule.train_freq": int(value), "runner.schedule.train_freq_unit": "step"}


def _normalize(algo: str, value: Any, entry: dict[str, Any]) -> Settings:
    if value is False:
        return {}
    options = parse_expression(value) if isinstance(value, str) else {}
    if value is not True and not isinstance(options, dict):
        raise Refused(f"{value!r}: expected true or a dict of VecNormalize options")
    known = {"norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise Refused(f"VecNormalize options {unknown} have no cardio counterpart (known: {sorted(known)})")
    settings: dict[str, Any] = {"norm_obs": True, "norm_reward": True, **options}
    if "gamma" in entry and "gamma" not in options:  # rl-zoo hands the agent's gamma to VecNormalize
        settings["gamma"] = float(entry["gamma"])
    return {"runner.normalize": settings}


def _ent_coef(algo: str, value: Any, entry: dict[str, Any]) -> Settings:
    if isinstance(value, str):
        if algo != "sac" or not value.startswith("auto"):
            raise Refused(f"{value!r}: only SAC's 'auto' / 'auto_<x>' is a learnt coefficient")
        return {"agent.ent_coef": value}
    return {"agent.ent_coef": float(value)}


def _noise_type(algo: str, value: Any, entry: dict[str, Any]) -> Settings:
    if value not in NOISE_TYPES:
        raise Refused(f"{value!r}: known noise types are {sorted(NOISE_TYPES)}")
    return {"agent.noise_type": NOISE_TYPES[value]}


def _policy(algo: str, value: Any, entry: dict[str, Any]) -> Settings:
    if value == "CnnPolicy" and _is_atari_entry(entry):
        # the env preprocessing gives [4, 84, 84] uint8 frames, for which cardio's torso is the Nature-CNN (as
        # SB3's CnnPolicy, no hidden layers after it); SB3's actor-critic CnnPolicy shares it between both heads
        return {"agent.share_torso": True} if algo in ("ppo", "a2c") else {}
    if value != "MlpPolicy":
        raise Refused(f"{value!r}: cardio's agents read flat Box observations here (MlpPolicy)")
    return {}


def _optimize_memory_usage(algo: str, value: Any, entry: dict[str, Any]) -> Settings:
    # SB3's optimisation loses the final observation of truncated episodes, so rl-zoo turns it off; cardio's
    # memory_saving keeps it, and its default `auto` already stores image observations once
    return {"buffer.memory_saving": True} if value else {}


ATARI_WRAPPER = "stable_baselines3.common.atari_wrappers.AtariWrapper"
"""rl-zoo's Atari preprocessing (``env_wrapper``), translated to :data:`ATARI_ENV`'s wrappers."""


def _is_atari_entry(entry: dict[str, Any]) -> bool:
    wrappers = entry.get("env_wrapper")
    return (wrappers if isinstance(wrappers, list) else [wrappers]) == [ATARI_WRAPPER]


def atari_env(frame_stack: int) -> Settings:
    """``env.wrappers`` / ``env.train_wrappers`` of ``configs/env/atari.yaml`` for SB3's ``AtariWrapper`` (its
    defaults: noop 30, skip 4, 84x84, terminal on life loss, clipped rewards) plus ``frame_stack`` frames."""
    preprocessing = {
        "_target_": "cardio.envs.atari.atari_preprocessing",
        "noop_max": 30,
        "frame_skip": 4,
        "screen_size": 84,
        "frame_stack": frame_stack,
        "fire_reset": True,
    }
    return {
        "env.wrappers": [preprocessing],
        "env.train_wrappers": ["cardio.envs.atari.EpisodicLife", "cardio.envs.atari.clip_reward"],
    }


def _env_wrapper(algo: str, value: Any, entry: dict[str, Any]) -> Settings:
    if not _is_atari_entry(entry):
        names = [next(iter(w)) if isinstance(w, dict) else w for w in (value if isinstance(value, list) else [value])]
        raise Refused(f"{names}: only {ATARI_WRAPPER} (without arguments) has a cardio counterpart")
    return atari_env(int(entry.get("frame_stack", 1)))


def _frame_stack(algo: str, value: Any, entry: dict[str, Any]) -> Settings:
    if not _is_atari_entry(entry):
        raise Refused("frame stacking has a cardio counterpart only with env_wrapper AtariWrapper")
    return {}  # folded into the Atari preprocessing by _env_wrapper


def _net_arch(algo: str, value: Any) -> Settings:
    if isinstance(value, list):
        return {"agent.hidden_sizes": [int(w) for w in value]}
    if not isinstance(value, dict):
        raise Refused(f"net_arch={value!r}: expected a list of widths or a dict of them")
    critic = "vf" if algo in ("ppo", "a2c") else "qf"
    if algo == "dqn" or set(value) - {"pi", critic} or "pi" not in value:
        raise Refused(f"net_arch={value!r}: {algo.upper()} takes a list or {{pi: [...], {critic}: [...]}}")
    settings: Settings = {"agent.hidden_sizes": [int(w) for w in value["pi"]]}
    if critic in value:
        settings[f"agent.{critic}_hidden_sizes"] = [int(w) for w in value[critic]]
    return settings


def _policy_kwargs(algo: str, value: Any, entry: dict[str, Any]) -> Settings:
    try:
        kwargs = parse_expression(value) if isinstance(value, str) else dict(value)
    except UnreadableValue as exc:
        raise Refused(str(exc)) from exc
    settings: Settings = {}
    for key, item in kwargs.items():
        if key == "net_arch":
            settings |= _net_arch(algo, item)
        elif key == "activation_fn":
            name = str(item).rsplit(".", 1)[-1]
            if name not in ACTIVATIONS:
                raise Refused(f"activation_fn={item}: known are {sorted(ACTIVATIONS)}")
            settings["agent.activation"] = ACTIVATIONS[name]
        elif key == "log_std_init" and algo in ("ppo", "a2c", "sac"):
            settings["agent.log_std_init"] = float(item)
        elif key == "ortho_init" and algo in ("ppo", "a2c"):
            settings["agent.ortho_init"] = bool(item)
        elif key == "optimizer_class" and algo == "a2c" and str(item).rsplit(".", 1)[-1] == "RMSpropTFLike":
            settings["agent.rms_prop_tf_like"] = True
        elif key == "optimizer_kwargs" and algo == "a2c" and isinstance(item, dict) and set(item) <= {"eps", "alpha"}:
            settings |= {f"agent.rms_prop_{k}": float(v) for k, v in item.items()}
        else:
            raise Refused(f"policy_kwargs {key}={item!r} has no cardio counterpart for {algo.upper()}")
    return settings


TRANSLATIONS: dict[str, tuple[tuple[str, ...], Callable[[str, Any, dict[str, Any]], Settings]]] = {
    # key: (algorithms it applies to, translation to cardio's dotted keys)
    "n_timesteps": (ALGOS, _to("runner.total_steps", lambda v: int(float(v)))),
    "policy": (ALGOS, _policy),
    "n_envs": (ALGOS, _to("env.num_envs", int)),
    "normalize": (ALGOS, _normalize),
    "learning_rate": (ALGOS, _schedule("agent.lr", "agent.lr_schedule")),
    "gamma": (ALGOS, _to("agent.gamma", float)),
    "batch_size": (("dqn", "sac", "td3", "ddpg", "ppo"), _batch_size),
    "policy_kwargs": (ALGOS, _policy_kwargs),
    "max_grad_norm": (("dqn", "ppo", "a2c"), _to("agent.max_grad_norm", float)),
    # replay and schedule (off-policy)
    "buffer_size": (OFF_POLICY, _to("buffer.capacity", lambda v: int(float(v)))),
    "learning_starts": (OFF_POLICY, _to("runner.schedule.learning_starts", lambda v: int(float(v)))),
    "train_freq": (OFF_POLICY, _train_freq),
    "gradient_steps": (OFF_POLICY, _to("runner.schedule.gradient_steps", int)),
    "optimize_memory_usage": (OFF_POLICY, _optimize_memory_usage),
    # Atari (rl-zoo's `atari` block): the env preprocessing
    "env_wrapper": (ALGOS, _env_wrapper),
    "frame_stack": (ALGOS, _frame_stack),
    # DQN
    "target_update_interval": (("dqn",), _to("agent.target_update_interval", lambda v: int(float(v)))),
    "exploration_fraction": (("dqn",), _to("agent.exploration_fraction", float)),
    "exploration_initial_eps": (("dqn",), _to("agent.exploration_initial_eps", float)),
    "exploration_final_eps": (("dqn",), _to("agent.exploration_final_eps", float)),
    # SAC / TD3 / DDPG
    "tau": (("sac", "td3", "ddpg"), _to("agent.tau", float)),
    "ent_coef": (("sac", "ppo", "a2c"), _ent_coef),
    "target_entropy": (("sac",), _to("agent.target_entropy")),
    "noise_type": (("td3", "ddpg"), _noise_type),
    "noise_std": (("td3", "ddpg"), _to("agent.noise_std", float)),
    "policy_delay": (("td3",), _to("agent.policy_delay", int)),
    "target_policy_noise": (("td3",), _to("agent.target_policy_noise", float)),
    "target_noise_clip": (("td3",), _to("agent.target_noise_clip", float)),
    # gSDE
    "use_sde": (("ppo", "a2c", "sac"), _to("agent.use_sde", bool)),
    "sde_sample_freq": (("ppo", "a2c", "sac"), _to("agent.sde_sample_freq", int)),
    "use_sde_at_warmup": (("sac",), _to("agent.use_sde_at_warmup", bool)),
    # PPO / A2C
    "n_steps": (("ppo", "a2c"), _to("runner.schedule.n_steps", int)),
    "n_epochs": (("ppo",), _to("agent.n_epochs", int)),
    "gae_lambda": (("ppo", "a2c"), _to("agent.gae_lambda", float)),
    "vf_coef": (("ppo", "a2c"), _to("agent.vf_coef", float)),
    "clip_range": (("ppo",), _schedule("agent.clip_range", "agent.clip_range_schedule")),
    "clip_range_vf": (("ppo",), _to("agent.clip_range_vf", float)),
    "normalize_advantage": (("ppo", "a2c"), _to("agent.normalize_advantage", bool)),
    "use_rms_prop": (("a2c",), _to("agent.use_rms_prop", bool)),
}
"""Every rl-zoo key cardio understands; any other key (``callback``, ``replay_buffer_class``...), or a value it
cannot express (an ``env_wrapper`` other than Atari's), refuses its entry."""


def translate(algo: str, entry: dict[str, Any]) -> Settings:
    """cardio's dotted settings for one rl-zoo entry.

    Raises:
        Refused: one message listing every key that cannot be translated.
    """
    settings: Settings = {}
    problems: list[str] = []
    for key, value in entry.items():
        algos, rule = TRANSLATIONS.get(key, ((), None))
        if rule is None or algo not in algos:
            problems.append(f"{key}: no cardio counterpart for {algo.upper()}")
            continue
        try:
            settings |= rule(algo, value, entry)
        except (Refused, UnreadableValue, TypeError, ValueError) as exc:
            problems.append(f"{key}: {exc}")
    if problems:
        raise Refused("; ".join(problems))
    if algo in OFF_POLICY:  # SB3's replay/schedule defaults where rl-zoo is silent (cardio's configs differ)
        defaults = SB3_OFF_POLICY_DEFAULTS[algo]
        fill = {
            "buffer.capacity": defaults["buffer_size"],
            "runner.schedule.learning_starts": defaults["learning_starts"],
            "runner.schedule.batch_size": defaults["batch_size"],
            "runner.schedule.train_freq": defaults["train_freq"],
            "runner.schedule.train_freq_unit": "step",
            "runner.schedule.gradient_steps": defaults["gradient_steps"],
        }
    else:
        fill = {"runner.schedule.n_steps": SB3_ON_POLICY_DEFAULTS[algo]["n_steps"]}
    fill["env.num_envs"] = 1
    return {**fill, **settings}


def nest(settings: Settings) -> dict[str, Any]:
    """``{"agent.lr": 1e-3}`` -> ``{"agent": {"lr": 1e-3}}``, sections in cardio's config order."""
    out: dict[str, Any] = {}
    order = ("env", "agent", "buffer", "runner")
    for dotted in sorted(settings, key=lambda k: (order.index(k.split(".")[0]), k.count("."))):
        node = out
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = settings[dotted]
    return {section: out[section] for section in order if section in out}


# ---------------------------------------------------------------------------------------------------- envs


def env_name(env_id: str) -> str:
    """``"Hopper-v5"`` -> ``"Hopper"``: the ``env=`` option for an env id."""
    return env_id.rsplit("-v", 1)[0].replace("/", "_")


def check_env(env_id: str) -> str | None:
    """``None`` when gymnasium builds ``env_id`` here, else why not."""
    import gymnasium as gym

    if env_id not in gym.registry:
        return f"env {env_id!r} is not registered in gymnasium {gym.__version__} (needs a package cardio lacks)"
    try:
        gym.make(env_id).close()
    except Exception as exc:  # any import or build failure: the pair cannot run here
        return f"env {env_id!r} does not build: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    return None


def is_mujoco(env_id: str) -> bool:
    import gymnasium as gym

    spec = gym.registry.get(env_id)
    return spec is not None and "mujoco" in str(spec.entry_point)


def target_ids(env_id: str) -> list[str]:
    """The env ids an entry is written for: itself, and ``-v5`` for a MuJoCo ``-v4`` entry."""
    import gymnasium as gym

    ids = [env_id]
    if env_id.endswith("-v4") and is_mujoco(env_id) and env_id[:-1] + "5" in gym.registry:
        ids.append(env_id[:-1] + "5")
    return ids


# ---------------------------------------------------------------------------------------------------- output


@dataclass
class Report:
    """What one import did."""

    commit: str
    imported: list[tuple[str, str, str]] = field(default_factory=list)  # (algo, rl-zoo id, written id)
    refused: list[tuple[str, str, str]] = field(default_factory=list)  # (algo, rl-zoo id, reasons)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (algo, non-env key)
    files: dict[Path, str] = field(default_factory=dict)  # path -> content

    def imported_entries(self) -> set[tuple[str, str]]:
        """``(algo, rl-zoo id)`` of the imported entries (a MuJoCo entry writes two files)."""
        return {(algo, zoo_id) for algo, zoo_id, _ in self.imported}

    def refusal_summary(self) -> list[tuple[str, int]]:
        """``(reason class, count)``, most frequent first."""
        counts: dict[str, int] = {}
        for _, _, reason in self.refused:
            key = _summary_key(reason)
            counts[key] = counts.get(key, 0) + 1
        return sorted(counts.items(), key=lambda kv: -kv[1])


def zoo_file(algo: str, zoo_id: str, env_id: str, entry: dict[str, Any], settings: Settings, commit: str) -> str:
    """The text of ``configs/zoo/<algo>/<env_id>.yaml``: a header naming the source, then the settings."""
    applies = f"on {env_id}, applied when agent={algo} builds {env_id}."
    if env_id == ATARI:
        applies = f"on every Atari game, applied when agent={algo} builds an Atari id without a file of its own."
    header = [
        "# @package _global_",
        f"# rl-zoo hyperparameters for {algo.upper()} {applies}",
        f"# Generated by scripts/import_zoo.py from rl-baselines3-zoo hyperparams/{algo}.yml, entry {zoo_id},",
        f"# commit {commit[:12]}: edit the script, not this file. Command-line overrides still win.",
    ]
    if zoo_id != env_id:
        header.append(f"# rl-zoo tuned these numbers on {zoo_id}; cardio builds {env_id} (gymnasium's fixed MuJoCo).")
    source = ", ".join(f"{k}={' '.join(str(v).split())}" for k, v in entry.items())
    header += textwrap.wrap(source, 114, initial_indent="# rl-zoo: ", subsequent_indent="#   ")
    body = yaml.dump(nest(settings), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=110)
    return "\n".join(header) + "\n" + body


class _Dumper(yaml.SafeDumper):
    """Block mappings, flow lists (``hidden_sizes: [256, 256]``), as cardio's hand-written configs."""


_Dumper.add_representer(
    list,
    lambda dumper, data: dumper.represent_sequence(
        "tag:yaml.org,2002:seq", data, all(not isinstance(x, dict | list) for x in data)
    ),
)


def env_file(env_id: str) -> str:
    extra = ""
    if is_mujoco(env_id):
        extra = " Needs cardio[mujoco]."
    elif any(name in env_id for name in ("LunarLander", "BipedalWalker", "CarRacing")):
        extra = " Needs cardio[box2d]."
    return (
        f"# {env_id}, written by scripts/import_zoo.py for rl-zoo's tuned entries.{extra}\n"
        "defaults:\n  - _vector\n  - _self_\n\n"
        f"id: {env_id}\n"
    )


def published_scores(zoo_dir: Path) -> dict[tuple[str, str], str]:
    """``{(algo, env id): "mean ± std (n_timesteps)"}`` from rl-zoo's ``benchmark.md`` table."""
    path = zoo_dir / "benchmark.md"
    scores: dict[tuple[str, str], str] = {}
    if not path.exists():
        return scores
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[0] in ALGOS:
            try:
                scores[(cells[0], cells[1])] = f"{float(cells[2]):.1f} ± {float(cells[3]):.1f} ({cells[4]})"
            except ValueError:
                continue
    return scores


def published(scores: dict[tuple[str, str], str], algo: str, env_id: str) -> str:
    """The score for this id, else the same env at another version (named), else ``-``."""
    if (algo, env_id) in scores:
        return scores[(algo, env_id)]
    family = env_name(env_id)
    others = sorted(k[1] for k in scores if k[0] == algo and env_name(k[1]) == family)
    return f"{scores[(algo, others[-1])]} on {others[-1]}" if others else "-"


def run_import(zoo_dir: Path, commit: str, algos: tuple[str, ...] = ALGOS, root: Path = ROOT) -> Report:
    """Translate every entry of ``algos``; fill ``Report.files`` (nothing is written here)."""
    report = Report(commit)
    existing_envs = {p.stem: p for p in (root / "configs" / "env").glob("*.yaml")}
    env_ids_of = {}
    for name, path in existing_envs.items():
        loaded = yaml.safe_load(path.read_text()) or {}
        if "id" in loaded and not loaded.get("wrappers"):
            env_ids_of[loaded["id"]] = name
    for algo in algos:
        for zoo_id, entry in load_algo(zoo_dir, algo).items():
            if zoo_id in NON_ENV_KEYS:
                report.skipped.append((algo, zoo_id))
                continue
            reasons = []
            why = None if zoo_id == ATARI else check_env(zoo_id)
            if why is not None:
                reasons.append(why)
            try:
                settings = translate(algo, entry)
            except Refused as exc:
                reasons.append(str(exc))
            if reasons:
                report.refused.append((algo, zoo_id, "; ".join(reasons)))
                continue
            for env_id in target_ids(zoo_id):
                path = root / "configs" / "zoo" / algo / f"{env_id}.yaml"
                report.files[path] = zoo_file(algo, zoo_id, env_id, entry, settings, commit)
                report.imported.append((algo, zoo_id, env_id))
                if env_id != ATARI and env_id not in env_ids_of and (env_id == target_ids(zoo_id)[-1]):
                    name = env_name(env_id)
                    env_ids_of[env_id] = name
                    report.files[root / "configs" / "env" / f"{name}.yaml"] = env_file(env_id)
    report.files[root / "docs" / "zoo.md"] = zoo_doc(report, zoo_dir, env_ids_of, root)
    report.files[root / "docs" / "envs.md"] = envs_doc(report, zoo_dir, root)
    return report


ENVS_INTRO = (
    "Each `configs/env/<Name>.yaml` builds `num_envs` copies of one gymnasium id through `cardio.envs.make_env`\n"
    "(options shared in `_vector.yaml`: vectorisation, autoreset mode, per-copy `wrappers` given as dotted paths\n"
    "or `{_target_: ..., kwargs}`). `agent=<algo> env=<Name>` applies `configs/zoo/<algo>/<id>.yaml` when the\n"
    "table lists the agent (rl-zoo's tuned numbers, `docs/zoo.md`); rl-zoo's published score is one trained\n"
    "agent of its `benchmark.md` (a score of another version of the env is named). Extras:\n"
    "`pip install cardio[mujoco]`, `cardio[box2d]` or `cardio[atari]`. Written by `scripts/import_zoo.py` with\n"
    "`docs/zoo.md`."
)


def envs_doc(report: Report, zoo_dir: Path, root: Path) -> str:
    """``docs/envs.md``: every env config, what it builds, the extra it needs, its tuned agents and their
    rl-zoo scores."""
    scores = published_scores(zoo_dir)
    written = {p.stem: text for p, text in report.files.items() if p.parent.name == "env"}
    rows = []
    for path in sorted((root / "configs" / "env").glob("*.yaml")):
        if path.stem.startswith("_"):
            continue
        node = yaml.safe_load(written.get(path.stem, path.read_text()))
        env_id = str(node.get("id"))
        wrappers = ", ".join(str(w).rsplit(".", 1)[-1] for w in node.get("wrappers") or []) or "-"
        extra = "mujoco" if is_mujoco(env_id) else "box2d" if "box2d" in str(_entry_point(env_id)) else "-"
        built_as = env_id
        if path.stem == ATARI or ATARI in (node.get("defaults") or []):
            wrappers, extra, built_as = "Atari preprocessing (below)", "atari", ATARI
        tuned = sorted(algo for algo, _, built in report.imported if built == built_as)
        zoo_ids = {algo: zoo for algo, zoo, built in report.imported if built == built_as}
        if built_as == ATARI:
            zoo_ids = dict.fromkeys(tuned, env_id)  # the block's score is the game's
        score = "; ".join(f"{a}: {published(scores, a, zoo_ids[a])}" for a in tuned) or "-"
        rows.append(f"| `env={path.stem}` | {env_id} | {wrappers} | {extra} | {', '.join(tuned) or '-'} | {score} |")
    return (
        "\n".join(
            [
                "# Env configs",
                "",
                ENVS_INTRO,
                "",
                "| option | env id | wrappers | extra | tuned agents | rl-zoo published score |",
                "|---|---|---|---|---|---|",
                *rows,
                "",
                *atari_section(scores),
            ]
        )
        + "\n"
    )


ATARI_TEXT = (
    "## Atari",
    "",
    "`env=atari` (Pong by default; `env=atari env.id=<Game>NoFrameskip-v4` for any game), `env=Pong`, "
    "`env=Breakout`. Needs `pip install cardio-template[atari]` (ale-py; its wheels ship the game ROMs; OpenCV "
    "for the resizing); ale-py is imported only when an Atari id is built. `cardio/envs/atari.py` has the pieces. "
    "The preprocessing is Mnih et al. (2015)'s, as SB3's `AtariWrapper` and rl-zoo apply it:",
    "",
    "- both envs (`wrappers`): up to 30 no-op frames after each reset, one action repeated over 4 frames with the "
    "observation the pixel-wise max of the last two, 84x84 greyscale, FIRE after a reset in games that need it, "
    "the last 4 frames stacked: observations `[4, 84, 84]` uint8, which the agents' Nature-CNN torso scales to "
    "[0, 1] itself;",
    "- training env only (`train_wrappers`): a lost life ends the learning episode (terminated; the game goes on, "
    "FIRE pressed again) and rewards are clipped to their sign. The evaluation env plays whole games on the raw "
    "score.",
    "",
    "The episode return cardio reports (console, `rollout/ep_rew_mean`, `eval/*`, `monitor.csv`) is the game score "
    "of a whole game, never clipped; episode lengths count emulator frames, as SB3's `Monitor` does. The env must "
    "not skip frames itself (`ALE/<Game>-v5` needs `env.kwargs.frameskip=1`; the `NoFrameskip-v4` ids, rl-zoo's, "
    "do not). Replay stores each stacked observation once by default (`buffer.memory_saving: auto`): a transition "
    "takes 28,246 bytes (and the final frames kept at each life lost, a few percent more) instead of 56,462. Tuned "
    "agents: `configs/zoo/<algo>/atari.yaml` for DQN, PPO and A2C, rl-zoo's one `atari` block per algorithm, "
    "applied to every Atari id that has no file of its own (`docs/zoo.md`).",
    "",
    "rl-zoo's published scores (its `benchmark.md`: one agent per pair trained for 10M steps, deterministic "
    "evaluation, mean ± std of the game score):",
)


def atari_section(scores: dict[tuple[str, str], str]) -> list[str]:
    """The Atari part of ``docs/envs.md``: what the configs do and rl-zoo's score of every game it benchmarks."""
    games = sorted({env_id for _, env_id in scores if env_id.endswith("NoFrameskip-v4")})
    algos = ("dqn", "ppo", "a2c")
    rows = [f"| {game} | " + " | ".join(scores.get((a, game), "-") for a in algos) + " |" for game in games]
    return [*ATARI_TEXT, "", "| game | dqn | ppo | a2c |", "|---|---|---|---|", *rows]


def _entry_point(env_id: str) -> str:
    import gymnasium as gym

    spec = gym.registry.get(env_id)
    return "" if spec is None else str(spec.entry_point)


HELDOUT_START, HELDOUT_END = "<!-- heldout -->", "<!-- /heldout -->"


def zoo_doc(report: Report, zoo_dir: Path, env_names: dict[str, str], root: Path) -> str:
    scores = published_scores(zoo_dir)
    doc = root / "docs" / "zoo.md"
    heldout = f"{HELDOUT_START}\n(not run yet: `python bench/zoo_heldout.py`)\n{HELDOUT_END}"
    if doc.exists() and HELDOUT_START in doc.read_text():
        text = doc.read_text()
        heldout = text[text.index(HELDOUT_START) : text.index(HELDOUT_END) + len(HELDOUT_END)]
    entries = len(report.imported_entries()) + len(report.refused)
    lines = [
        "# rl-zoo's tuned hyperparameters in cardio",
        "",
        "`scripts/import_zoo.py` translates rl-baselines3-zoo's `hyperparams/<algo>.yml` for cardio's algorithms "
        "into `configs/zoo/<algo>/<EnvId>.yaml`; `agent=<algo> env=<Name>` applies the file of the env id actually "
        "built. Source: [DLR-RM/rl-baselines3-zoo](https://github.com/DLR-RM/rl-baselines3-zoo) at commit "
        f"`{report.commit}`. Regenerate with `python scripts/import_zoo.py <rl-zoo checkout> --commit <sha>`; "
        "`--check` fails when the committed files differ from what the import writes.",
        "",
        "Translation: every rl-zoo key has one cardio key (the table `TRANSLATIONS` in the script). Units are SB3's "
        "throughout (`train_freq` in vector steps, everything else in env steps). `lin_<x>` becomes the value and "
        "a `linear` schedule; `normalize` becomes `runner.normalize` (shared statistics, frozen in evaluation, "
        "saved in checkpoints: `cardio/envs/normalize.py`) with the entry's `gamma`; `policy_kwargs` splits into "
        "`hidden_sizes` / `vf_hidden_sizes` / `qf_hidden_sizes`, `activation`, `log_std_init`, `ortho_init`; "
        "`train_freq: [1, episode]` becomes `train_freq: 1, train_freq_unit: episode`; gSDE keys map one to one. "
        "Keys rl-zoo leaves out take SB3's defaults, which are cardio's agent defaults; replay and schedule keys "
        "are always written out because cardio's agent configs start from other values. Differences that remain: "
        "cardio waits until the buffer holds a batch before the first update (SB3 samples with replacement from "
        "fewer), and MuJoCo entries tuned on `-v4` are also written for `-v5`.",
        "",
        "## Import report",
        "",
        f"{entries} rl-zoo entries for DQN, PPO, A2C, SAC, TD3 and DDPG (the `default` blocks are not envs): "
        f"**{len(report.imported_entries())} imported**, **{len(report.refused)} refused**, "
        f"{len(report.imported)} zoo files written (MuJoCo `-v4` entries also as `-v5`).",
        "",
        "| refused | count |",
        "|---|---|",
        *[f"| {reason} | {count} |" for reason, count in report.refusal_summary()],
        "",
        "## Held-out pairs: cardio beside SB3 on the same rl-zoo numbers",
        "",
        "`bench/zoo_heldout.py`: for each pair, cardio runs `agent=<algo> env=<Name>` with the generated file and "
        "SB3 (2.9.2) runs a model built from the very same rl-zoo entry (`lin_` schedules, `VecNormalize` with the "
        "entry's gamma, `policy_kwargs`, gSDE, action noise), seeds 0, 1, 2. Score: the final evaluation, 10 "
        "deterministic episodes on a separate env seeded `seed + 1000003` with the training statistics frozen, the "
        "env's own returns; mean ± std over the seeds that finished (their count in brackets). rl-zoo's published "
        "score (one agent, at its full budget) is beside them. Where rl-zoo's budget did not fit the CPU at hand, "
        "both libraries train for the same reduced budget, stated next to rl-zoo's in the steps column: the "
        "comparison with SB3 stays like for like, and rl-zoo's score is then a reference only. The time ratio (SB3 / "
        "cardio training time, median over seeds) was measured on a 2-core machine shared by many busy agents and "
        "is indicative at best.",
        "",
        heldout,
        "",
        "## Atari",
        "",
        "rl-zoo tunes one `atari` block per algorithm for every `*NoFrameskip-v4` game; it is written as "
        "`configs/zoo/<algo>/atari.yaml`, which `cardio.config` applies to any Atari id (`<Game>NoFrameskip-v4`, "
        "`ALE/<Game>-v5`) that has no file of its own, so `agent=dqn env=Breakout` and "
        "`agent=ppo env=atari env.id=SeaquestNoFrameskip-v4` both get it. `env_wrapper: AtariWrapper` with "
        "`frame_stack: 4` becomes the env's `wrappers` (noop reset, frame skip with max-pooling, 84x84 grey, FIRE "
        "reset, 4 stacked frames) and `train_wrappers` (episodic life, reward sign), exactly as in "
        "`configs/env/atari.yaml` (`docs/envs.md`); `CnnPolicy` is cardio's Nature-CNN torso, shared by actor and "
        "critic for PPO and A2C as in SB3; A2C's `RMSpropTFLike` (TensorFlow's RMSprop: epsilon inside the square "
        "root, the average starting at 1) is `agent.rms_prop_tf_like: true`; `optimize_memory_usage: False` is left "
        "to cardio's default `memory_saving: auto` (each frame stack stored once, the true final observation kept, "
        "which SB3's optimisation could not do).",
        "",
        "## Imported pairs",
        "",
        "rl-zoo's published score: its `benchmark.md` (one trained agent, deterministic evaluation; a score of the "
        "same env at another version is named).",
        "",
        "| agent | env id | `env=` | rl-zoo entry | rl-zoo published score |",
        "|---|---|---|---|---|",
    ]
    for algo, zoo_id, env_id in sorted(report.imported):
        if zoo_id == ATARI:
            games = "; ".join(f"{env_name(g)}: {published(scores, algo, g)}" for g in ATARI_GAMES)
            lines.append(f"| {algo} | every Atari game | atari, Pong, Breakout | {zoo_id} | {games} |")
            continue
        name = env_names.get(env_id, "-")
        lines.append(f"| {algo} | {env_id} | {name} | {zoo_id} | {published(scores, algo, zoo_id)} |")
    lines += ["", "## Refused entries", "", "| agent | rl-zoo entry | why |", "|---|---|---|"]
    for algo, zoo_id, reasons in sorted(report.refused):
        lines.append(f"| {algo} | {zoo_id} | {reasons.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def _summary_key(reason: str) -> str:
    if "not registered" in reason:
        return "env not registered in gymnasium (pybullet, MiniGrid, robotics, custom envs)"
    if "does not build" in reason:
        return "env registered but does not build here (old MuJoCo versions need mujoco-py)"
    keys = sorted({part.split(":")[0].strip() for part in reason.split(";")})
    return "untranslatable keys: " + ", ".join(f"`{k}`" for k in keys)


def git_commit(zoo_dir: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(zoo_dir), "rev-parse", "HEAD"], capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("zoo", type=Path, help="rl-zoo checkout (or a folder holding hyperparams/*.yml)")
    parser.add_argument("--commit", default=None, help="rl-zoo commit the files come from (default: git HEAD)")
    parser.add_argument("--algos", nargs="*", default=list(ALGOS), choices=ALGOS)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the files on disk differ")
    args = parser.parse_args(argv)
    commit = args.commit or git_commit(args.zoo)
    if commit is None:
        parser.error(f"{args.zoo} is not a git checkout; pass --commit <sha> naming the rl-zoo commit")
    report = run_import(args.zoo, commit, tuple(args.algos))
    for algo, zoo_id, reasons in report.refused:
        print(f"REFUSED {algo} {zoo_id}: {reasons}", file=sys.stderr)
    stale = [p for p, text in report.files.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for path in stale:
            print(f"differs: {path.relative_to(ROOT)}", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report.files[path])
    print(
        f"imported {len(report.imported_entries())} entries ({len(report.imported)} zoo files), "
        f"refused {len(report.refused)}; {len(stale)} files written"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
