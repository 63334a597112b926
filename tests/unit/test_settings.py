"""Settings a user writes as words: switches accept the usual spellings and refuse others
with the setting's name."""

from __future__ import annotations

import pytest

from c2c_ari import metrics
from c2c_ari.config import Settings


@pytest.mark.parametrize(("word", "value"), [
    ("on", True), ("true", True), ("1", True), ("Yes", True),
    ("off", False), ("false", False), ("0", False), ("NO", False),
])
def test_a_switch_from_the_environment(word: str, value: bool) -> None:
    assert Settings.load(env={"C2C_ARI_ACCESS_LOG": word}).access_log is value


def test_the_access_log_is_off_unless_asked_for() -> None:
    assert Settings.load(env={}).access_log is False


def test_a_switch_that_is_no_switch_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="access_log"):
        Settings.load(env={"C2C_ARI_ACCESS_LOG": "maybe"})


def test_clients_cannot_add_http_series_with_made_up_methods() -> None:
    def series() -> set[tuple[str, ...]]:
        return {tuple(sample.labels.values()) for family in metrics.REGISTRY.collect()
                if family.name == "c2c_http_request_seconds" for sample in family.samples
                if sample.name.endswith("_count")}

    for method in ("FOO", "BAR", "BAZ"):
        metrics.observe_http("unmatched", method, 405, 0.001)
    metrics.observe_http("unmatched", "GET", 404, 0.001)
    made = {labels for labels in series() if labels[0] == "unmatched"}
    assert ("unmatched", "other", "405") in made
    assert ("unmatched", "GET", "404") in made
    assert not {labels[1] for labels in made} & {"FOO", "BAR", "BAZ"}
