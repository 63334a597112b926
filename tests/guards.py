"""Test-suite guard, loaded for every test by tests/conftest.py: a skip is never silent.

In CI (`CI` set to anything but empty, 0, false or no) any skip of any test is a failure:
`pytest.skip` in a test or fixture, a `skip`/`skipif` mark (module-level `pytestmark`
included), and a module skipped while it is collected (`pytest.skip(...,
allow_module_level=True)`, `pytest.importorskip`). A skipped module becomes a collection
error, which stops the run as an import error would. An expected failure (`xfail`) is not a
skip and stays as it is.

Elsewhere, the end of the session says in one line how many tests marked `asterisk` (a real
Asterisk) and `browser` (headless Chromium) were skipped and why, and how many others were.

This module imports nothing of the project, so that a pytest run of any folder can load it
with `-p tests.guards` (the guard's own tests do).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass, field

import pytest

# Markers that say a test needs a real part of the system, and how the summary names them.
REAL_PARTS = {"asterisk": "real-Asterisk", "browser": "browser"}
SKIPPED_IN_CI = "skipped in CI, which counts as a failure: "


def in_ci() -> bool:
    """True when the environment says this is a CI run (CI=true, CI=1, ...)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The reason a skipped report gives, without pytest's "Skipped: " prefix."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


@dataclass
class Skips:
    """What was skipped in this session (outside CI), for the summary line."""

    by_marker: dict[str, dict[str, list[str]]] = field(
        default_factory=lambda: {marker: {} for marker in REAL_PARTS})  # reason -> node ids
    others: set[str] = field(default_factory=set)
    modules: set[str] = field(default_factory=set)

    def add_test(self, nodeid: str, markers: set[str], reason: str) -> None:
        real = [marker for marker in REAL_PARTS if marker in markers]
        for marker in real:
            self.by_marker[marker].setdefault(reason, []).append(nodeid)
        if not real:
            self.others.add(nodeid)

    def line(self) -> str:
        """One line: each marker's count and distinct reasons, then the others."""
        parts = []
        for marker, label in REAL_PARTS.items():
            reasons = self.by_marker[marker]
            count = len({nodeid for ids in reasons.values() for nodeid in ids})
            why = f" ({'; '.join(reasons)})" if reasons else ""
            parts.append(f"{count} {label}{why}")
        parts.append(f"{len(self.others)} other")
        if self.modules:
            parts.append(f"{len(self.modules)} module(s) skipped whole at collection")
        return "skipped tests: " + ", ".join(parts)


SKIPS = pytest.StashKey[Skips]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SKIPS] = Skips()


def _fail_instead(report: pytest.TestReport | pytest.CollectReport) -> None:
    report.outcome = "failed"
    report.longrepr = SKIPPED_IN_CI + skip_reason(report)


# tryfirst: the outermost wrapper, so it sees the report after the xfail plugin has marked
# expected failures (`wasxfail`), which are left alone.
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        if in_ci():
            _fail_instead(report)
        else:
            markers = {mark.name for mark in item.iter_markers()}
            item.config.stash[SKIPS].add_test(item.nodeid, markers, skip_reason(report))
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if report.skipped:
        if in_ci():
            _fail_instead(report)
        else:
            collector.config.stash[SKIPS].modules.add(report.nodeid)
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not in_ci():
        terminalreporter.write_line(terminalreporter.config.stash[SKIPS].line())
