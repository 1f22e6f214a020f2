"""Evaluate a trained run: ``make evaluate run=outputs/<date>/<run> episodes=20 video=true``.

Rebuilds env, agent and runner from the run's saved ``config.yaml`` (through cardio/build.py), loads its
checkpoint, runs deterministic episodes on the eval env, prints the ``eval/*`` metrics and writes them to
``<run dir>/eval.json``. ``video=true`` also renders episodes (``render_mode=rgb_array``) to
``<run dir>/videos/eval-episode-<k>.gif``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from cardio import checkpoint, provenance
from cardio.build import build_env, build_runner
from cardio.cli import make_style
from cardio.loggers import Logger
from cardio.runner import Runner


def record_video(runner: Runner, cfg: Any, out_dir: Path, episodes: int) -> list[Path]:
    """Render ``episodes`` deterministic episodes of one env copy to animated GIFs (PIL, no extra packages)."""
    from PIL import Image

    video_cfg = cfg.copy()
    video_cfg.env.num_envs = 1
    video_cfg.env.kwargs = {**(cfg.env.get("kwargs") or {}), "render_mode": "rgb_array"}
    env: Any = build_env(video_cfg, evaluation=True)
    fps = env.metadata.get("render_fps") or env.get_attr("metadata")[0].get("render_fps", 30)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    obs, _ = env.reset()
    for k in range(episodes):
        frames = [np.asarray(env.call("render")[0])]
        done = False
        while not done:
            action, _ = runner.agent.act(obs, explore=False)
            obs, _, terminated, truncated, _ = env.step(action)
            done = bool(terminated[0] or truncated[0])
            if not done:  # SAME_STEP autoreset: the obs after `done` is already the next episode's
                frames.append(np.asarray(env.call("render")[0]))
        path = out_dir / f"eval-episode-{k}.gif"
        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
        paths.append(path)
    env.close()
    return paths


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run dir written by scripts/train.py (holds config.yaml)")
    parser.add_argument("--episodes", type=int, default=10, help="deterministic eval episodes")
    parser.add_argument("--checkpoint", type=Path, default=None, help="checkpoint file (default <run>/last.ckpt)")
    parser.add_argument(
        "--video",
        type=lambda s: s.lower() in ("1", "true", "yes"),
        default=False,
        help="also render episodes to <run>/videos/*.gif",
    )
    parser.add_argument("--video-episodes", type=int, default=1, help="episodes to render with video=true")
    raw = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(make_style(raw, ["episodes", "checkpoint", "video", "video_episodes"], "run"))

    config_path = args.run / "config.yaml"
    if not config_path.is_file():
        parser.error(f"{args.run} has no config.yaml; pass a run dir written by scripts/train.py")
    cfg = OmegaConf.load(config_path)
    assert isinstance(cfg, DictConfig), f"{config_path} is not a mapping"
    ckpt = checkpoint.resolve(args.checkpoint if args.checkpoint is not None else args.run)
    note = provenance.check(args.run, provenance.collect(cfg.get("device", "cpu")), "evaluating")
    if note is not None:
        print(note)
    runner = build_runner(cfg, logger=Logger())  # no sinks: evaluation writes eval.json only
    runner.load(ckpt)
    metrics = runner.evaluate(args.episodes)
    result = {"checkpoint": str(ckpt), "env_steps": runner.env_steps, "episodes": args.episodes, **metrics}
    (args.run / "eval.json").write_text(json.dumps(result, indent=2) + "\n")

    table = Table(title=f"{args.run} @ {runner.env_steps:,} env steps", show_header=False, title_justify="left")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4g}")
    Console().print(table)
    if args.video:
        for path in record_video(runner, cfg, args.run / "videos", args.video_episodes):
            print(f"video: {path}")
    return metrics


if __name__ == "__main__":
    main()
