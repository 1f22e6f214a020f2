"""Evaluate a trained run: ``make evaluate run=outputs/<date>/<run> episodes=20 video=true``.

Rebuilds env, agent and runner from the run's saved ``config.yaml`` (through cardio/build.py), loads the agent's
weights from ``<run dir>/weights.npz`` (plain arrays, read without unpickling anything: safe for files from
others), runs deterministic episodes on the eval env, prints the ``eval/*`` metrics and writes them to
``<run dir>/eval.json``. A full resume checkpoint (``last.ckpt``) is a pickle and is loaded only when asked for
with ``checkpoint=<file> trust_pickle=true``: do that for your own files only (docs/checkpoints.md).
``video=true`` also renders episodes (``render_mode=rgb_array``) to ``<run dir>/videos/eval-episode-<k>.gif``;
``video_format=mp4`` (or ``gif,mp4``) writes H.264 MP4 instead of (or as well as) GIF, through imageio-ffmpeg.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from cardio import checkpoint, provenance, weights
from cardio.build import build_env, build_runner
from cardio.cli import make_style
from cardio.envs.normalize import NORMALIZER_NAME
from cardio.errors import report_user_errors
from cardio.loggers import Logger
from cardio.paths import use_working_directory
from cardio.runner import Runner
from cardio.validate import validate

VIDEO_FORMATS = ("gif", "mp4")


def write_gif(frames: list[np.ndarray], path: Path, fps: float) -> Path:
    """An animated GIF (PIL, no extra package); loops forever."""
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return path


def write_mp4(frames: list[np.ndarray], path: Path, fps: float) -> Path:
    """An H.264 MP4 through imageio's ffmpeg plugin (``pip install imageio-ffmpeg``: the ``plot`` extra).

    yuv420p, the pixel format every player reads, needs even sizes: odd frames get one black row/column.

    Raises:
        SystemExit: imageio-ffmpeg is not installed (the message says how to install it).
    """
    try:
        import imageio
        import imageio_ffmpeg  # noqa: F401  (imageio finds its ffmpeg binary through it)
    except ImportError:
        raise SystemExit("video_format=mp4 needs imageio-ffmpeg: pip install 'imageio-ffmpeg>=0.5'") from None
    height, width = frames[0].shape[:2]
    pad = ((0, height % 2), (0, width % 2), (0, 0))
    writer = imageio.get_writer(path, fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=2)
    try:
        for frame in frames:
            writer.append_data(np.pad(frame[..., :3], pad))
    finally:
        writer.close()
    return path


def record_video(
    runner: Runner, cfg: Any, out_dir: Path, episodes: int, formats: Sequence[str] = ("gif",)
) -> list[Path]:
    """Render ``episodes`` deterministic episodes of one env copy, each to one file per format.

    Args:
        runner: holds the agent (loaded from the checkpoint).
        cfg: the run's config; the env is rebuilt with ``render_mode=rgb_array``.
        out_dir: where ``eval-episode-<k>.<format>`` go.
        episodes: episodes to render.
        formats: any of ``gif`` (PIL) and ``mp4`` (imageio-ffmpeg).
    """
    video_cfg = cfg.copy()
    video_cfg.env.num_envs = 1
    video_cfg.env.kwargs = {**(cfg.env.get("kwargs") or {}), "render_mode": "rgb_array"}
    env: Any = build_env(video_cfg, evaluation=True)
    fps = env.metadata.get("render_fps") or env.get_attr("metadata")[0].get("render_fps", 30)
    out_dir.mkdir(parents=True, exist_ok=True)
    writers = {"gif": write_gif, "mp4": write_mp4}
    paths = []
    obs, _ = env.reset()
    for k in range(episodes):
        frames = [np.asarray(env.call("render")[0])]
        done = False
        while not done:
            shown = obs if runner.normalizer is None else runner.normalizer.normalize_obs(obs)  # frozen statistics
            action, _ = runner.agent.act(shown, explore=False)
            obs, _, terminated, truncated, _ = env.step(action)
            done = bool(terminated[0] or truncated[0])
            if not done:  # SAME_STEP autoreset: the obs after `done` is already the next episode's
                frames.append(np.asarray(env.call("render")[0]))
        paths += [writers[f](frames, out_dir / f"eval-episode-{k}.{f}", fps) for f in formats]
    env.close()
    return paths


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run dir written by scripts/train.py (holds config.yaml)")
    parser.add_argument("--episodes", type=int, default=10, help="deterministic eval episodes")
    parser.add_argument("--weights", type=Path, default=None, help="weights file (default <run>/weights.npz)")
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="a full resume checkpoint instead (a pickle: needs trust_pickle)"
    )
    parser.add_argument(
        "--trust-pickle",
        type=lambda s: s.lower() in ("1", "true", "yes"),
        default=False,
        help="allow --checkpoint: unpickling runs code from the file, so only for files you trust",
    )
    parser.add_argument(
        "--video",
        type=lambda s: s.lower() in ("1", "true", "yes"),
        default=False,
        help="also render episodes to <run>/videos/ (see --video-format)",
    )
    parser.add_argument("--video-episodes", type=int, default=1, help="episodes to render with video=true")
    parser.add_argument("--video-format", default="gif", help="comma list of gif, mp4 (mp4 needs imageio-ffmpeg)")
    use_working_directory()
    raw = sys.argv[1:] if argv is None else argv
    options = ["episodes", "weights", "checkpoint", "trust_pickle", "video", "video_episodes", "video_format"]
    args = parser.parse_args(make_style(raw, options, "run"))
    for option in ("episodes", "video_episodes"):
        if getattr(args, option) < 1:
            parser.error(f"{option}={getattr(args, option)}: expected a positive number of episodes")
    formats = [f for f in args.video_format.lower().split(",") if f]
    if not formats or set(formats) - set(VIDEO_FORMATS):
        parser.error(f"video_format={args.video_format}: expected a comma list of {', '.join(VIDEO_FORMATS)}")

    cfg = load_run_config(args.run, parser)
    seeds = cfg.get("seeds")
    if seeds is None:
        return evaluate_run(args, args.run, cfg, formats, parser)
    # A seeds=[...] run (cardio/multiseed.py): every seed from its own dir, then the mean over seeds.
    if args.weights is not None or args.checkpoint is not None:
        parser.error(
            f"{args.run} is a seeds={list(seeds)} run: pass one seed's dir ({args.run}/seed_<s>) with "
            f"weights= or checkpoint=, or none of them to evaluate every seed"
        )
    per_seed = {}
    for seed in seeds:
        seed_dir = args.run / f"seed_{int(seed)}"
        per_seed[int(seed)] = evaluate_run(args, seed_dir, load_run_config(seed_dir, parser), formats, parser)
    mean = {key: float(np.mean([m[key] for m in per_seed.values()])) for key in next(iter(per_seed.values()))}
    result = {"episodes": args.episodes, "seeds": per_seed, "mean_over_seeds": mean}
    (args.run / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title=f"{args.run}: mean over seeds {list(per_seed)}", show_header=False, title_justify="left")
    for key, value in mean.items():
        table.add_row(key, f"{value:.4g}")
    Console().print(table)
    return mean


def load_run_config(run: Path, parser: argparse.ArgumentParser) -> DictConfig:
    """A run dir's saved ``config.yaml``, its paths rebased onto where the dir lies now (a copied or moved run)."""
    config_path = run / "config.yaml"
    if not config_path.is_file():
        parser.error(f"{run} has no config.yaml; pass a run dir written by scripts/train.py")
    cfg = OmegaConf.load(config_path)
    if not isinstance(cfg, DictConfig):
        parser.error(f"{config_path} is not a mapping; pass a run dir written by scripts/train.py")
    return checkpoint.rebase_run_dir(cfg, run)


def evaluate_run(
    args: argparse.Namespace, run: Path, cfg: DictConfig, formats: list[str], parser: argparse.ArgumentParser
) -> dict[str, float]:
    """Evaluate one single-seed run dir as the options say; writes ``<run>/eval.json`` (and videos)."""
    if args.checkpoint is not None and not args.trust_pickle:
        parser.error(
            f"checkpoint={args.checkpoint} is a pickle, and unpickling runs code from the file; evaluate "
            f"{run / weights.WEIGHTS_NAME} instead, or add trust_pickle=true if you wrote the file yourself"
        )
    note = provenance.check(run, provenance.collect(cfg.get("device", "cpu")), "evaluating")
    if note is not None:
        print(note)
    with report_user_errors():
        validate(cfg, check_env=False)  # the spaces are checked when the agent is built
        runner = build_runner(cfg, logger=Logger())  # no sinks: evaluation writes eval.json only
        if args.checkpoint is not None:  # trusted: the whole runner state, unpickled
            source = checkpoint.resolve(args.checkpoint)
            runner.load(source)
            env_steps = runner.env_steps
        else:
            source = args.weights if args.weights is not None else run / weights.WEIGHTS_NAME
            if not source.is_file():
                parser.error(
                    f"no weights file {source}; a run written before weights files existed has only last.ckpt "
                    f"(a pickle): if you trust it, pass checkpoint={run / checkpoint.CHECKPOINT_NAME} "
                    f"trust_pickle=true"
                )
            try:
                weights.load_weights(runner.agent, source)
                env_steps = int(weights.weights_meta(source).get("env_steps", -1))
            except weights.WeightsError as exc:
                parser.error(str(exc))
            if runner.normalizer is not None:  # runner.normalize: the agent acts on normalised observations
                stats = source.parent / NORMALIZER_NAME
                if not stats.is_file():
                    parser.error(f"the run normalises observations (runner.normalize) but {stats} is missing")
                try:
                    runner.normalizer.load(stats)
                except ValueError as exc:
                    parser.error(str(exc))
        metrics = runner.evaluate(args.episodes)
    result = {"checkpoint": str(source), "env_steps": env_steps, "episodes": args.episodes, **metrics}
    (run / "eval.json").write_text(json.dumps(result, indent=2) + "\n")

    table = Table(title=f"{run} @ {env_steps:,} env steps", show_header=False, title_justify="left")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4g}")
    Console().print(table)
    if args.video:
        for path in record_video(runner, cfg, run / "videos", args.video_episodes, formats):
            print(f"video: {path}")
    return metrics


if __name__ == "__main__":
    main()
