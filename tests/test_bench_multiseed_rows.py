"""``bench/multiseed.py``'s timing table reads one device's rows: a GPU round never joins the CPU figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import multiseed


def timing_row(device: str | None, s: int, together: float, one: float) -> dict[str, object]:
    row: dict[str, object] = {
        "kind": "timing", "case": "zoo", "S": s, "steps": 5000, "repeat": 0, "load": 1.0,
        "together_wall": together, "together_cpu": together, "separate_wall": 10.0 * s, "separate_cpu": 10.0 * s,
        "one_wall": one, "one_cpu": one,
    }  # fmt: skip
    if device is not None:
        row["device"] = device
    return row


@pytest.mark.parametrize(("device", "expected"), [("cpu", "2.00"), ("cuda", "1.20")])
def test_the_timing_table_keeps_each_devices_rows_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], device: str, expected: str
) -> None:
    results = tmp_path / "multiseed.jsonl"
    rows = [
        timing_row(None, 5, 20.0, 10.0),  # written before rows named their device: a CPU row
        timing_row("cpu", 5, 20.0, 10.0),
        timing_row("cuda", 5, 12.0, 10.0),
    ]
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(multiseed, "RESULTS", results)
    multiseed.summarise_timing(["zoo"], [5], device)
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| zoo | 5 |")]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2] == ("2" if device == "cpu" else "1")  # rounds of that device only
    assert cells[4] == expected  # together / one (CPU)


def test_the_committed_cpu_rounds_stay_out_of_a_gpu_table(capsys: pytest.CaptureFixture[str]) -> None:
    """The rows ``bench/multiseed.py`` wrote on this project's CPU machines (docs/bench/multiseed.jsonl)."""
    multiseed.summarise_timing(["zoo"], [1, 5], "cpu")
    assert any(ln.startswith("| zoo | 5 |") for ln in capsys.readouterr().out.splitlines())
    multiseed.summarise_timing(["zoo"], [1, 5], "cuda")
    assert not any(ln.startswith("| zoo |") for ln in capsys.readouterr().out.splitlines())
