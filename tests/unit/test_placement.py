"""Which node a new call goes to: the fit node with the fewest calls in flight, counting this
instance's own calls exactly (placed a moment ago included) and the other instances' from a
recent reading of the store. A burst of connects that all read the same figures must still
spread, which counting only the store's shared figures did not (a burst piled onto one
node)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from c2c_ari.ari import AriClient
from c2c_ari.domain.accounts import Account
from c2c_ari.domain.connect import ConnectAttempt
from c2c_ari.stasis import app as stasis_app
from c2c_ari.stasis.app import StasisApp


@dataclass
class FitNode:
    name: str
    available: bool = True
    up: bool = True


class Recorder:
    """The other instances' calls by node, as the store would count them."""

    def __init__(self, others: dict[str, int]) -> None:
        self.others = others
        self.reads = 0

    async def load_by_node(self, exclude_owner: str = "") -> dict[str, int]:
        assert exclude_owner == "me"
        self.reads += 1
        return dict(self.others)


def _app(recorder: Recorder, names: tuple[str, ...] = ("node1", "node2")) -> StasisApp:
    clients = {name: AriClient(f"http://{name}.invalid:8088", "u", "p", "c2c-ari-me")
               for name in names}
    app = StasisApp(clients, recorder,  # type: ignore[arg-type]
                    extension_endpoint="PJSIP/{extension}",
                    contact_endpoint="PJSIP/{contact}@trunk", owner="me")
    app.nodes = {name: FitNode(name) for name in names}  # type: ignore[misc]
    return app


ATTEMPT = ConnectAttempt(account=Account(id="a" * 32, name="A", realm="a.example", created=0),
                         clicktocall={}, contact="+15551234567", blocking=False,
                         custom_application_vars={}, client_ip=None, authenticated=True)


async def _place(app: StasisApp) -> str:
    """What place() does with the choice: counted as this instance's until registered."""
    first = (await app._placement(ATTEMPT))[0]
    app._placing[first.name] += 1
    return first.name


async def test_a_burst_spreads_evenly_over_the_nodes() -> None:
    app = _app(Recorder({}))
    placed = Counter([await _place(app) for _ in range(100)])
    assert placed == {"node1": 50, "node2": 50}


async def test_the_other_instances_calls_count_too() -> None:
    app = _app(Recorder({"node1": 30}))
    placed = Counter([await _place(app) for _ in range(40)])
    # node2 first, until it has caught up with node1's 30; then both in turn.
    assert placed == {"node1": 5, "node2": 35}


async def test_the_store_is_read_once_for_a_burst(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(stasis_app.time, "monotonic", lambda: clock[0])
    recorder = Recorder({})
    app = _app(recorder)
    for _ in range(20):
        await _place(app)
    assert recorder.reads == 1
    clock[0] += stasis_app.OTHERS_MAX_AGE + 0.1
    await _place(app)
    assert recorder.reads == 2


async def test_an_unfit_node_gets_nothing() -> None:
    app = _app(Recorder({"node1": 50}), ("node1", "node2", "node3"))
    app.nodes["node2"].available = False  # type: ignore[attr-defined]
    placed = Counter([await _place(app) for _ in range(30)])
    assert placed == {"node3": 30}
    assert [node.name for node in await app._placement(ATTEMPT)] == ["node3", "node1"]


async def test_a_phone_s_call_stays_on_its_node() -> None:
    app = _app(Recorder({"node1": 50}))
    attempt: Any = ConnectAttempt(**{**ATTEMPT.__dict__, "incoming_node": "node1"})
    assert [node.name for node in await app._placement(attempt)] == ["node1"]
