"""Every benchmark still runs: each one's quick mode (tiny counts, a few seconds) ends with its
JSON line; and `make bench`'s runner names a benchmark that fails, runs the others, and exits 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import SCRIPTS, main


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_the_benchmark_runs_in_quick_mode_and_reports(script: Path) -> None:
    ran = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True,
                         text=True, timeout=300, cwd=script.parents[1])
    assert ran.returncode == 0, f"{script.name} --quick failed:\n{ran.stdout[-2000:]}" \
                                f"\n{ran.stderr[-3000:]}"
    last = json.loads(ran.stdout.strip().splitlines()[-1])
    assert last["benchmark"] == script.stem and last["quick"] is True
    assert last["headline"] and all(isinstance(v, (int, float)) for v in last["headline"].values())


def test_the_runner_names_a_failed_benchmark_runs_the_rest_and_exits_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken, fine = tmp_path / "broken.py", tmp_path / "fine.py"
    broken.write_text("raise ImportError(\"cannot import name 'good_booking'\")\n")
    fine.write_text("import json\nprint(json.dumps({'benchmark': 'fine', 'headline': "
                    "{'speed (×)': 2.5}}))\n")
    silent = tmp_path / "silent.py"
    silent.write_text("print('figures, but no JSON line')\n")
    assert main([], [broken, fine, silent]) == 1
    out = capsys.readouterr().out
    table = out[out.index("Headline figures"):]
    assert "broken" in table and "FAILED" in table and "ImportError: cannot import name" in table
    assert "speed (×)  2.5" in table
    assert 'silent' in table and 'printed no JSON line {"benchmark": "silent"' in table
    assert "1 of 3 benchmarks ran to the end" in out and "failed: broken, silent" in out
