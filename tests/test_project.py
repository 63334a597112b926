"""Project hygiene that users notice: the README's commands are the ones CI runs, and the
code passes the linter the contributing guide asks for."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"# test-command:begin\n(.+?)\n# test-command:end", ci, re.S)
    assert command is not None
    assert command.group(1).strip() in (ROOT / "README.md").read_text()


def test_ruff_is_clean() -> None:
    targets = [name for name in ("c2c_ari", "tests", "bench") if (ROOT / name).is_dir()]
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", *targets],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
