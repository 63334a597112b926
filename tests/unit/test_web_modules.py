"""The front-end's own unit tests (web/test, Node's test runner), run as part of pytest so
that the one test command runs them too."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "web"


def test_web_unit_tests_pass() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not found (the web build needs it too)")
    done = subprocess.run([node, "--test", "test/"], cwd=WEB, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout and "# pass 0" not in done.stdout
