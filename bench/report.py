"""How the benchmarks judge and show their figures: ratios against the baseline, targets
(PASS or MISS), text tables and the JSON summary."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal


def ratio(value: float, baseline: float, if_zero: float = 0.0) -> float:
    """value/baseline; `if_zero` when the baseline is 0 (a side that did nothing)."""
    return value / baseline if baseline else if_zero


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p50 of 50 values is the 25th smallest); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def verdict(passed: bool) -> str:
    """For a target: a miss is reported, and does not fail the run."""
    return "PASS" if passed else "MISS"


def check(passed: bool) -> str:
    """For a correctness check (history rows, leftovers): a failure fails the run."""
    return "PASS" if passed else "FAIL"


@dataclass(frozen=True)
class Target:
    """A goal for one figure: reach `limit` (">=") or stay under it ("<=")."""

    op: Literal[">=", "<="]
    limit: float

    def met(self, value: float) -> bool:
        return value >= self.limit if self.op == ">=" else value <= self.limit

    def judge(self, value: float) -> dict[str, Any]:
        """The JSON summary's entry for a ratio: the ratio, the target and whether it passed."""
        return {"ratio": value, "target": self.limit, "pass": self.met(value)}

    def text(self, passed: bool, spec: str = ".2f", unit: str = "") -> str:
        """`(target >= 0.50)  PASS`, to follow the figure on its line. `passed` comes from the
        summary, which judged the unrounded figure."""
        return f"(target {self.op} {self.limit:{spec}}{unit})  {verdict(passed)}"


@dataclass(frozen=True)
class Column:
    """One column of a text table: its title, its width (the title's too), how its values are
    formatted, and the text before it."""

    title: str
    width: int
    spec: str = ""  # format spec of a value, e.g. ",.0f" or ".1%"
    left: bool = False  # text is aligned left, numbers right
    suffix: str = ""  # a unit after the value ("s"), counted in the width
    gap: str = ""

    def _fit(self, text: str) -> str:
        return self.gap + (text.ljust(self.width) if self.left else text.rjust(self.width))

    def head(self) -> str:
        return self._fit(self.title)

    def cell(self, value: Any) -> str:
        return self._fit(format(value, self.spec) + self.suffix)


def table(
    columns: Sequence[Column], rows: Iterable[Sequence[Any]], indent: str = ""
) -> list[str]:
    """The header line and one line per row, each value formatted by its column."""
    lines = [indent + "".join(column.head() for column in columns)]
    for row in rows:
        lines.append(indent + "".join(
            column.cell(value) for column, value in zip(columns, row, strict=True)))
    return lines


def rounded(value: Any) -> Any:
    """Floats to 3 decimals, all the way down: more digits would only show noise."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def json_summary(summary: dict[str, Any]) -> str:
    """The machine-readable summary printed by --json, floats rounded as above."""
    return json.dumps(rounded(summary), indent=2, default=str)
