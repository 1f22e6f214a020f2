"""The README's agent example really runs."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_write_your_own_agent_example_runs(capsys) -> None:
    section = README.read_text().split("## Write your own agent", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    assert len(code.splitlines()) <= 40
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the example must not trip the runner's own warnings either
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "eval/mean_reward" in out
