"""Project hygiene that users notice: the README's commands are the ones CI runs, and the
code passes the linter the contributing guide asks for, and its imports follow the layering
the README describes."""

from __future__ import annotations

import ast
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


def _imports_by_part() -> dict[str, set[str]]:
    """Which parts of c2c_ari (a subpackage or a top-level module) each part imports."""
    package = ROOT / "c2c_ari"
    found: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        part = path.relative_to(package).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "c2c_ari":
                    names = [f"c2c_ari.{alias.name}" for alias in node.names]
                else:
                    names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                bits = name.split(".")
                if bits[0] == "c2c_ari" and len(bits) > 1 and bits[1] != part:
                    found.setdefault(part, set()).add(bits[1])
    return found


def test_imports_point_one_way() -> None:
    """The layering the README's code layout describes: HTTP → domain → storage, Stasis →
    domain, nothing below reaching up."""
    imports = _imports_by_part()
    leaves = {"config", "metrics", "logs", "__version__"}
    assert imports.get("store", set()) <= leaves, imports.get("store")
    assert imports.get("domain", set()) <= {"store"} | leaves, imports.get("domain")
    assert imports.get("ari", set()) <= leaves, imports.get("ari")
    assert imports.get("localasterisk", set()) <= {"config"}, imports.get("localasterisk")
    assert imports.get("api", set()) <= {"domain", "store", "schemas"} | leaves, \
        imports.get("api")
    assert imports.get("stasis", set()) <= {"domain", "store", "ari"} | leaves, \
        imports.get("stasis")
    assert imports.get("cluster", set()) <= {"domain", "store", "stasis", "ari"} | leaves, \
        imports.get("cluster")
    for part, uses in imports.items():
        if part not in ("app", "cli", "__main__"):
            assert not uses & {"api", "app", "cli"}, (part, uses)
