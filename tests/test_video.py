"""Evaluation videos: GIF (PIL) and MP4 (imageio-ffmpeg), read back frame by frame."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from scripts.evaluate import main as evaluate
from scripts.evaluate import write_mp4

imageio = pytest.importorskip("imageio")
pytest.importorskip("imageio_ffmpeg")
REPO = Path(__file__).resolve().parents[1]


def test_a_tiny_mp4_reads_back_with_its_frames_and_an_even_size(tmp_path: Path) -> None:
    frames = [np.full((5, 7, 3), 30 * k, dtype=np.uint8) for k in range(7)]  # odd size: padded for yuv420p
    path = write_mp4(frames, tmp_path / "tiny.mp4", fps=10)
    reader = imageio.get_reader(path)
    try:
        assert reader.count_frames() == 7
        back = [frame for frame in reader]
    finally:
        reader.close()
    assert back[0].shape == (6, 8, 3)
    # frame order survives encoding: brightness rises 30 per frame (lossy, so within a few levels)
    np.testing.assert_allclose([f[:5, :7].mean() for f in back], [30 * k for k in range(7)], atol=4)


def test_evaluate_writes_gif_and_mp4_of_the_same_episode(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train = [sys.executable, "scripts/train.py", "runner.total_steps=256", "runner.eval_freq=0", "logger=csv"]
    subprocess.run([*train, "runner.eval_episodes=1", f"hydra.run.dir={run_dir}"], cwd=REPO, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    evaluate([f"run={run_dir}", "episodes=1", "video=true", "video_format=gif,mp4"])
    gif = Image.open(run_dir / "videos" / "eval-episode-0.gif")
    # PIL merges identical consecutive frames into one of longer duration: count the GIF's frames by time
    # (CartPole renders at 50 fps: 20 ms a frame)
    gif_frames = sum(frame.info["duration"] for frame in ImageSequence.Iterator(gif)) // 20
    reader = imageio.get_reader(run_dir / "videos" / "eval-episode-0.mp4")
    try:
        assert reader.count_frames() == gif_frames >= 8  # one frame per step of the episode, in both files
        assert reader.get_meta_data()["size"] == gif.size  # CartPole's 600 x 400 render, unscaled
    finally:
        reader.close()
    with pytest.raises(SystemExit):
        evaluate([f"run={run_dir}", "video=true", "video_format=avi"])
