"""Every `pattern` in schemas/ must mean the same in the browser: JSON Schema patterns are
ECMA-262 regular expressions, and the console validates with the same documents in
JavaScript (unicode mode, where an escape such as `\\-` outside a class is a syntax error)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def _patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return found + [p for value in node.values() for p in _patterns(value)]
    if isinstance(node, list):
        return [p for value in node for p in _patterns(value)]
    return []


def test_every_pattern_compiles_as_an_ecmascript_unicode_regex() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not found (the web build needs it too)")
    patterns = sorted({p for f in SCHEMAS.glob("*.json")
                       for p in _patterns(json.loads(f.read_text()))})
    assert len(patterns) >= 5
    script = ("const bad = JSON.parse(require('fs').readFileSync(0, 'utf8')).filter(p => {"
              " try { new RegExp(p, 'u'); return false; } catch { return true; } });"
              " process.stdout.write(JSON.stringify(bad));")
    done = subprocess.run([node, "-e", script], input=json.dumps(patterns), text=True,
                          capture_output=True, check=True, timeout=30)
    assert json.loads(done.stdout) == []
