"""Learning curves and aggregate scores: ``make plot runs=outputs/multirun/2026-11-24/10-00-00``.

Takes run dirs, multirun or sweep dirs, shell-style globs (``runs='outputs/multirun/*/*'``) and comma lists of
those (``runs=a,b``). Runs are grouped by their resolved ``config.yaml``: the seeds of one configuration make one
curve, labelled by the keys that differ between curves (``agent.lr=0.001 (n=2)``).
Writes ``<out>/curve_<metric>.png`` (mean and 95 % bootstrap band over seeds, x = env steps) and
``<out>/aggregate_<metric>.png`` (IQM of final scores with a 95 % bootstrap CI), and prints the scores.
``overlay=path/to/monitor.csv`` draws another library's run (SB3 monitor or progress CSV) on the same axes.

``aggregate=true`` also scores methods across envs as rliable does (cardio/aggregate.py): each run's final
score is normalised per env to 0 = random policy, 1 = the env's ``reward_threshold`` (or ``norm=ENV:LOW:HIGH``),
then IQM, optimality gap, performance profiles and the probability of improvement of each pair of methods,
with 95 % stratified bootstrap CIs: ``<out>/envs_<metric>.png`` and ``.json``. A method is what varies within
an env (``by=agent._target_,agent.lr`` picks the keys instead).

    python scripts/plot.py outputs/multirun/x --metric rollout/ep_rew_mean --overlay "SB3:sb3/monitor.csv"
    make plot runs='outputs/multirun/2026-11-30/*' aggregate=true norm=CartPole-v1:22:500
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cardio import plotting
from cardio.cli import make_style
from cardio.errors import report_user_errors

OPTIONS = ["metric", "out", "overlay", "title", "aggregate", "norm", "by", "reps"]


def split_runs(words: list[str]) -> list[str]:
    """``a,b`` -> ``a``, ``b`` (a path that exists as written, commas and all, is kept whole)."""
    out: list[str] = []
    for word in words:
        out += [word] if Path(word).exists() else [w for w in word.split(",") if w]
    return out


def default_out(path: str) -> Path:
    """``<path>/plots``, where ``path`` loses any glob from its first wildcard on (``runs/x/*`` -> ``runs/x``)."""
    cut = min([i for i in (path.find(c) for c in "*?[") if i >= 0], default=len(path))
    head = Path(path[:cut]) if cut == len(path) or path[cut - 1] == "/" else Path(path[:cut]).parent
    return head.resolve() / "plots"


def parse_norm(specs: list[str]) -> dict[str, tuple[float, float]]:
    """``["CartPole-v1:22:500"]`` -> ``{"CartPole-v1": (22.0, 500.0)}`` (env ids may hold ``:`` themselves)."""
    norm = {}
    for spec in specs:
        env, low, high = [*spec.rsplit(":", 2), "", ""][:3]
        try:
            norm[env] = (float(low), float(high))
        except ValueError:
            raise plotting.AggregateInputError(
                f"norm={spec}: expected ENV:LOW:HIGH with numbers, e.g. norm=CartPole-v1:22:500"
            ) from None
    return norm


def aggregate_inputs(runs: list[plotting.Run], metric: str, args: argparse.Namespace) -> tuple[dict, list, dict]:
    """The normalised score matrices the across-env aggregate reads, with its envs and references.

    Raises:
        plotting.AggregateInputError: the runs cannot be aggregated as asked (named in the message).
    """
    try:
        by = [k for k in args.by.split(",") if k] if args.by else None
        return plotting.score_matrices(runs, metric, parse_norm(args.norm), by)
    except ValueError as exc:
        raise plotting.AggregateInputError(f"aggregate=true: {exc}") from None


def across_envs(inputs: tuple[dict, list, dict], metric: str, args: argparse.Namespace, out_dir: Path) -> dict:
    """The rliable-style aggregate of :func:`aggregate_inputs`: print it, draw it, write it as JSON; returns the
    JSON's content."""
    matrices, envs, refs = inputs
    results = plotting.aggregate_across_envs(matrices, reps=args.reps)
    name = metric.replace("/", "_")
    png = plotting.plot_across_envs(matrices, results, envs, metric, out_dir / f"envs_{name}.png", args.reps)
    record = {
        "metric": metric,
        "envs": envs,
        "normalisation": {env: {"low": low, "high": high} for env, (low, high) in refs.items()},
        "scores": {label: m.tolist() for label, m in matrices.items()},
        "results": results,
    }
    (out_dir / f"envs_{name}.json").write_text(json.dumps(record, indent=1))
    table = Table(title=f"final {metric} across {len(envs)} envs, normalised; 95 % stratified bootstrap CIs")
    for col in ("method", "statistic", "value", "95 % CI"):
        table.add_column(col)
    for label, stats in results.items():
        for stat, (mid, lo, hi) in stats.items():
            table.add_row(label, stat, f"{mid:.3f}", f"[{lo:.3f}, {hi:.3f}]")
    Console().print(table)
    for env, (low, high) in refs.items():
        print(f"{env}: 0 = {low:.4g}, 1 = {high:.4g}")
    print(f"wrote {png}")
    return record


def main(argv: list[str] | None = None) -> dict[str, tuple[float, float, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run dirs, multirun/sweep dirs, globs, comma lists")
    parser.add_argument("--metric", default=None, help="y metric (default eval/mean_reward, else ep_rew_mean)")
    parser.add_argument("--out", type=Path, default=None, help="output dir (default <first run path>/plots)")
    parser.add_argument("--overlay", action="append", default=[], help="[LABEL:]CSV of another library's run")
    parser.add_argument("--title", default=None, help="figure title")
    parser.add_argument(
        "--aggregate",
        type=lambda s: s.lower() in ("1", "true", "yes"),
        default=False,
        help="also score methods across envs (IQM, optimality gap, profiles, P(X > Y))",
    )
    parser.add_argument("--norm", action="append", default=[], help="ENV:LOW:HIGH normalisation of one env")
    parser.add_argument("--by", default=None, help="comma list of config keys that name a method")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    raw = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(make_style(raw, OPTIONS, "runs"))
    paths = split_runs(args.runs)
    for path in paths:  # `smooth=5` is no option: it would be looked for as a run dir
        key, sep, _ = path.partition("=")
        if sep and key.isidentifier() and not Path(path).exists():
            parser.error(f"{path}: no such option; plot takes {', '.join(f'{o}=' for o in OPTIONS)} and run dirs")
    with report_user_errors():
        return plot(paths, args)


def plot(paths: list[str], args: argparse.Namespace) -> dict[str, tuple[float, float, float]]:
    """Curves and scores of the runs under ``paths`` as ``args`` ask; returns each group's IQM and 95 % CI."""
    runs = plotting.load_runs(paths)
    metric = plotting.pick_metric(runs, args.metric)
    inputs = aggregate_inputs(runs, metric, args) if args.aggregate else None  # refused before anything is drawn
    groups = plotting.group_runs(runs)
    out_dir = args.out if args.out is not None else default_out(paths[0])
    overlays = []
    for spec in args.overlay:
        label, sep, path = spec.rpartition(":")
        overlays.append((label if sep else Path(path).stem, path))
    name = metric.replace("/", "_")
    curve_png = plotting.plot_learning_curves(groups, metric, out_dir / f"curve_{name}.png", overlays, args.title)

    scores = {
        label: plotting.iqm_ci([plotting.final_score(r, metric) for r in group]) for label, group in groups.items()
    }
    agg_png = plotting.plot_aggregate(scores, metric, out_dir / f"aggregate_{name}.png")
    table = Table(title=f"final {metric}: IQM over runs, 95 % bootstrap CI", title_justify="left")
    for col in ("group", "runs", "IQM", "95 % CI"):
        table.add_column(col)
    for label, (mid, lo, hi) in scores.items():
        table.add_row(label, str(len(groups[label])), f"{mid:.4g}", f"[{lo:.4g}, {hi:.4g}]")
    Console().print(table)
    print(f"wrote {curve_png}\nwrote {agg_png}")
    if inputs is not None:
        across_envs(inputs, metric, args, out_dir)
    return scores


if __name__ == "__main__":
    main()
