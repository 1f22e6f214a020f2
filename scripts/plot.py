"""Learning curves and aggregate scores: ``make plot runs=outputs/multirun/2026-11-24/10-00-00``.

Takes run dirs, multirun dirs or glob patterns. Runs are grouped by their resolved ``config.yaml``: the seeds of one
configuration make one curve, labelled by the keys that differ between curves (``agent.lr=0.001 (n=2)``).
Writes ``<out>/curve_<metric>.png`` (mean and 95 % bootstrap band over seeds, x = env steps) and
``<out>/aggregate_<metric>.png`` (IQM of final scores with a 95 % bootstrap CI), and prints the scores.
``overlay=path/to/monitor.csv`` draws another library's run (SB3 monitor or progress CSV) on the same axes.

    python scripts/plot.py outputs/multirun/x --metric rollout/ep_rew_mean --overlay "SB3:sb3/monitor.csv"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cardio import plotting
from cardio.cli import make_style


def main(argv: list[str] | None = None) -> dict[str, tuple[float, float, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run dirs, multirun dirs or glob patterns")
    parser.add_argument("--metric", default=None, help="y metric (default eval/mean_reward, else ep_rew_mean)")
    parser.add_argument("--out", type=Path, default=None, help="output dir (default <first run path>/plots)")
    parser.add_argument("--overlay", action="append", default=[], help="[LABEL:]CSV of another library's run")
    parser.add_argument("--title", default=None, help="figure title")
    raw = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(make_style(raw, ["metric", "out", "overlay", "title"], "runs"))

    runs = plotting.load_runs(args.runs)
    metric = plotting.pick_metric(runs, args.metric)
    groups = plotting.group_runs(runs)
    out_dir = args.out if args.out is not None else Path(args.runs[0].split("*")[0]).resolve() / "plots"
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
    return scores


if __name__ == "__main__":
    main()
