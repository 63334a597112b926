"""The service under test: the Python whose installed c2c_ari is measured (this checkout's,
or another checkout's venv for a before/after), what that version is, and the settings it
knows, so that one bench can start older services too."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from common import BenchError

_DESCRIBE = """
import dataclasses, json, pathlib, c2c_ari
from c2c_ari.config import Settings
print(json.dumps({"package": str(pathlib.Path(c2c_ari.__file__).resolve().parent),
                  "settings": [f.name for f in dataclasses.fields(Settings)]}))
"""


@dataclass(frozen=True)
class Target:
    """One version of the service, as installed in `python`'s environment."""

    python: str
    package: Path  # the c2c_ari package it imports
    commit: str  # the checkout's commit ("?" outside a git checkout)
    settings: frozenset[str]

    @classmethod
    def detect(cls, python: str | None, cwd: Path) -> Target:
        """Ask `python` (default: the one running the bench) which c2c_ari it imports when
        started in `cwd`, a directory outside every checkout."""
        python = python or sys.executable
        try:
            done = subprocess.run([python, "-c", _DESCRIBE], capture_output=True, text=True,
                                  timeout=60, cwd=cwd)
        except OSError as exc:
            raise BenchError(f"cannot run {python}: {exc}") from None
        if done.returncode != 0:
            raise BenchError(f"{python} cannot import c2c_ari:\n{done.stderr[-2000:]}")
        described = json.loads(done.stdout)
        package = Path(described["package"])
        commit = subprocess.run(
            ["git", "-C", str(package.parent), "log", "-1", "--format=%h %s"],
            capture_output=True, text=True, timeout=30,
        )
        return cls(python, package, commit.stdout.strip()[:72] or "?",
                   frozenset(described["settings"]))

    def config(self, **wanted: str | int) -> str:
        """A TOML settings file with the wanted settings this version knows (an older one
        refuses unknown settings): calls are always off, so no bench ever reaches a PBX."""
        lines = ['ari_url = "off"']
        for name, value in wanted.items():
            if name in self.settings:
                lines.append(f"{name} = {json.dumps(value)}")
        return "\n".join(lines) + "\n"

    def describe(self) -> str:
        return f"{self.commit} ({self.package.parent.name})"
