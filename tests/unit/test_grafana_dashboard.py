"""The Grafana dashboard that ships in docs/grafana: valid JSON, and every metric it plots is
one the service exports (a renamed metric would leave a panel silently empty)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from c2c_ari import metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "c2c-ari.json"


def _exported() -> set[str]:
    names = set()
    for family in metrics.REGISTRY.collect():
        names |= {sample.name for sample in family.samples}
        names.add(family.name)
        # histograms' series exist once observed; name them all the same
        names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "count", "sum", "total")}
    return names


def test_the_dashboard_plots_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["panels"]
    exported = _exported()
    used = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used |= set(re.findall(r"\bc2c_[a-z_]+", target["expr"]))
    for query in dashboard["templating"]["list"]:
        used |= set(re.findall(r"\bc2c_[a-z_]+", str(query.get("query", ""))))
    assert used, "no metric found: has the pattern gone stale?"
    assert used <= exported, f"not exported: {sorted(used - exported)}"
