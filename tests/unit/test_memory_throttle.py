"""Sliding-window throttle, driven by a fake clock."""

from __future__ import annotations

import pytest

from c2c_ari.store.sqlite.throttle import Throttle


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_limit_respected(clock: FakeClock) -> None:
    throttle = Throttle(clock=clock)
    assert [throttle.hit("a", 3) for _ in range(3)] == [None, None, None]
    assert throttle.hit("a", 3) == pytest.approx(60.0)


def test_keys_are_independent(clock: FakeClock) -> None:
    throttle = Throttle(clock=clock)
    assert throttle.hit("a", 1) is None
    assert throttle.hit("a", 1) is not None
    assert throttle.hit("b", 1) is None


def test_retry_after_is_until_oldest_leaves_window(clock: FakeClock) -> None:
    throttle = Throttle(clock=clock)
    throttle.hit("a", 2)  # t=1000
    clock.now += 10
    throttle.hit("a", 2)  # t=1010
    clock.now += 5  # t=1015
    assert throttle.hit("a", 2) == pytest.approx(45.0)
    clock.now = 1059.5
    assert throttle.hit("a", 2) == pytest.approx(0.5)


def test_window_slides(clock: FakeClock) -> None:
    throttle = Throttle(clock=clock)
    throttle.hit("a", 2)  # t=1000
    clock.now = 1030.0
    throttle.hit("a", 2)  # t=1030
    clock.now = 1060.0  # first attempt is exactly one window old: it no longer counts
    assert throttle.hit("a", 2) is None  # t=1060
    assert throttle.hit("a", 2) == pytest.approx(30.0)  # 1030 + 60 - 1060
    clock.now = 1090.0
    assert throttle.hit("a", 2) is None


def test_refused_attempts_are_not_recorded(clock: FakeClock) -> None:
    throttle = Throttle(clock=clock)
    throttle.hit("a", 1)  # t=1000
    for step in range(1, 60):
        clock.now = 1000.0 + step
        assert throttle.hit("a", 1) == pytest.approx(60.0 - step)
    clock.now = 1060.0
    assert throttle.hit("a", 1) is None  # hammering did not push the window out


def test_none_is_unlimited_and_stores_nothing(clock: FakeClock) -> None:
    throttle = Throttle(clock=clock)
    assert all(throttle.hit("a", None) is None for _ in range(10_000))
    assert len(throttle) == 0


def test_at_most_limit_timestamps_per_key(clock: FakeClock) -> None:
    throttle = Throttle(clock=clock)
    for _ in range(100):
        throttle.hit("a", 5)
    assert len(throttle._hits["a"]) == 5


def test_lowered_limit_applies_at_once(clock: FakeClock) -> None:
    throttle = Throttle(clock=clock)
    for step in range(5):
        clock.now = 1000.0 + step
        throttle.hit("a", 10)
    clock.now = 1010.0
    assert throttle.hit("a", 2) == pytest.approx(1003.0 + 60 - 1010.0)  # 2nd newest expires
    assert len(throttle._hits["a"]) == 2


def test_limit_below_one_refuses(clock: FakeClock) -> None:
    throttle = Throttle(clock=clock)
    assert throttle.hit("a", 0) == pytest.approx(60.0)


def test_custom_window(clock: FakeClock) -> None:
    throttle = Throttle(window=1.0, clock=clock)
    assert throttle.hit("a", 1) is None
    assert throttle.hit("a", 1) == pytest.approx(1.0)
    clock.now += 1.0
    assert throttle.hit("a", 1) is None


def test_sweep_drops_stale_keys(clock: FakeClock) -> None:
    throttle = Throttle(clock=clock, sweep_every=10)
    for i in range(5):
        throttle.hit(f"old-{i}", 3)
    assert len(throttle) == 5
    clock.now += 61
    for _ in range(5):  # the 10th call sweeps
        throttle.hit("fresh", 100)
    assert len(throttle) == 1
    assert throttle.hit("old-0", 3) is None  # a swept key starts afresh


def test_sweep_keeps_keys_active_in_window(clock: FakeClock) -> None:
    throttle = Throttle(clock=clock, sweep_every=2)
    throttle.hit("a", 3)
    clock.now += 30
    throttle.hit("b", 3)  # sweep: "a" is 30 s old, still in the window
    assert len(throttle) == 2
