"""Prometheus metrics of the service (prometheus-client), in one registry of its own.

Counters and histograms are process-wide (one service process, one set of series); the
gauges of calls in flight and of ARI connections are read from their owners when scraped.
Labels only ever take bounded values: route templates (not paths), ARI operation templates,
result and cause names, node names from the settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Calls: from a few hundred milliseconds (an extension that answers at once) to the longest
# ring time a click-to-call allows (600 s).
_SETUP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

CALLS = Counter(
    "c2c_calls", "Calls by outcome, once their history item is final.",
    ["result", "cause", "trigger", "node"], registry=REGISTRY)
CALL_SETUP = Histogram(
    "c2c_call_setup_seconds", "From connect to both legs bridged.",
    buckets=_SETUP_BUCKETS, registry=REGISTRY)
CALL_FIRST_DIAL = Histogram(
    "c2c_call_first_dial_seconds",
    "From connect to Asterisk accepting the first leg's originate (its INVITE goes out).",
    buckets=_FAST_BUCKETS, registry=REGISTRY)
CONNECT_REFUSED = Counter(
    "c2c_connect_refused", "Connects refused before anything was dialled, by reason.",
    ["reason"], registry=REGISTRY)
ARI_REQUEST = Histogram(
    "c2c_ari_request_seconds", "ARI requests by operation and outcome (HTTP status).",
    ["node", "operation", "status"], buckets=_FAST_BUCKETS, registry=REGISTRY)
ARI_RECONNECTS = Counter(
    "c2c_ari_websocket_connects", "Events websocket connections made (reconnects included).",
    ["node", "app"], registry=REGISTRY)
HTTP_REQUESTS = Histogram(
    "c2c_http_request_seconds", "HTTP requests by route template, method and status.",
    ["route", "method", "status"], buckets=_FAST_BUCKETS, registry=REGISTRY)
# Methods a request's series may name; any other (clients choose it) is "other", so that no
# client can add series without bound.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_http_series: dict[tuple[str, str, int], Any] = {}


def observe_http(route: str, method: str, status: int, seconds: float) -> None:
    """One request in HTTP_REQUESTS. The labelled series are kept by key: prometheus-client's
    labels() takes a lock and builds a key on every call, a cost each request paid."""
    key = (route, method if method in _METHODS else "other", status)
    series = _http_series.get(key)
    if series is None:
        series = _http_series[key] = HTTP_REQUESTS.labels(key[0], key[1], str(status))
    series.observe(seconds)


DB_WRITE = Histogram(
    "c2c_db_write_seconds", "Database write transactions (a group commit counts once).",
    ["backend"], buckets=_FAST_BUCKETS, registry=REGISTRY)
REAPER_ROUNDS = Counter(
    "c2c_reaper_rounds", "Rounds of looking for the calls of gone instances.",
    registry=REGISTRY)
CALLS_TAKEN_OVER = Counter(
    "c2c_calls_taken_over", "Calls of gone instances this instance took over.",
    registry=REGISTRY)
UP = Gauge("c2c_up", "1 while the service runs.", registry=REGISTRY)
UP.set(1)


class LiveGauges(Collector):
    """Gauges read from their owners at scrape time: calls in flight by state, whether each
    ARI events websocket is up, and whether each Asterisk node takes new calls."""

    def __init__(self) -> None:
        self.calls_in_flight: Callable[[], dict[str, int]] | None = None
        self.ari_connected: Callable[[], dict[tuple[str, str], bool]] | None = None
        self.node_available: Callable[[], dict[str, bool]] | None = None

    def collect(self):  # type: ignore[no-untyped-def]
        calls = GaugeMetricFamily("c2c_calls_in_flight",
                                  "Calls this instance runs, by state.", labels=["state"])
        for state, count in (self.calls_in_flight() if self.calls_in_flight else {}).items():
            calls.add_metric([state], count)
        yield calls
        connected = GaugeMetricFamily(
            "c2c_ari_websocket_up", "1 while an ARI events websocket is connected.",
            labels=["node", "app"])
        for (node, app), up in (self.ari_connected() if self.ari_connected else {}).items():
            connected.add_metric([node, app], 1.0 if up else 0.0)
        yield connected
        available = GaugeMetricFamily(
            "c2c_node_available",
            "1 while an Asterisk node takes new calls (websocket up, ARI answers its ping,"
            " no recent failure).", labels=["node"])
        for node, fit in (self.node_available() if self.node_available else {}).items():
            available.add_metric([node], 1.0 if fit else 0.0)
        yield available


LIVE = LiveGauges()
REGISTRY.register(LIVE)


def exposition() -> bytes:
    """The registry in Prometheus' text format."""
    return generate_latest(REGISTRY)
