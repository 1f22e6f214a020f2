"""docs/logging.md's "Adding a sink" example works as written: the class, its config file, a Logger using it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

DOC = Path(__file__).resolve().parents[1] / "docs" / "logging.md"


def test_the_documented_custom_sink_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    section = DOC.read_text().split("## Adding a sink", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    config = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert code and config
    (tmp_path / "my_sinks.py").write_text(code.group(1))
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = OmegaConf.merge({"run_dir": str(tmp_path)}, {"logger": OmegaConf.create(config.group(1))})
    logger = instantiate(cfg.logger, _convert_="all")
    logger.log({"rollout/ep_rew_mean": 9.0}, 100)
    logger.log({"eval/mean_reward": 20.0, "eval/iqm_reward": 19.5}, 200)
    logger.close()
    assert (tmp_path / "evals.md").read_text().splitlines()[-1] == "| 200 | 20.0 | 19.5 |"
    assert (tmp_path / "progress.csv").is_file()  # the always-on files came along
