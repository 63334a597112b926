"""A small typed ARI (Asterisk REST Interface) client on aiohttp.

Only the calls a click-to-call Stasis app needs. Every method maps to one ARI operation; the
docstring names it as Asterisk's Swagger documents do (e.g. `POST /channels/{channelId}/dial`).

Retries. ARI answers 503 until Asterisk has fully booted, and it does so before it looks at
the request (res_ari checks "fully booted" ahead of dispatching), so a 503 means nothing was
done. A refused connection likewise never carried the request. Both are therefore retried
for every call, with capped backoff, until `retry_deadline` seconds have passed.

A request that may have reached Asterisk but got no answer (timeout, connection reset while
waiting) is different: its outcome is unknown. Only idempotent calls are repeated then. The
creating calls (`originate`, `create_channel`, `create_bridge`) count as idempotent because the
caller chooses the id up front: a repeated request for an id that the lost attempt already
created answers 409 "already exists"; the client then reads that object and returns it as the
result. A 409 on a request with no earlier uncertain attempt is a real conflict (the id belongs
to someone else) and raises `AriError`.

The limit of that: Asterisk checks ids only against channels that exist now. Had the lost
attempt's channel already ended before the repeat (a leg refused within the retry window), the
repeat would place the call again. With the defaults the window is small: a connection that
drops is retried at once, and a request that timed out (10 s) has used up the retry deadline
(5 s), so it is not repeated.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from .backoff import Backoff
from .errors import AriError, AriUnavailable

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
QueryValue = str | int | float | bool | None


@dataclass(frozen=True)
class _Response:
    status: int
    body: Any


def _segment(value: str) -> str:
    """One URL path segment from an id: percent-quoted, so `/`, `?` or `#` stay inside it."""
    if not isinstance(value, str) or value in ("", ".", ".."):
        raise ValueError(f"invalid ARI id: {value!r}")
    return quote(value, safe="")


def _id_list(ids: str | Sequence[str]) -> str:
    """ARI takes several channel ids as one comma-separated parameter."""
    items = [ids] if isinstance(ids, str) else list(ids)
    if not items or any(not item or "," in item for item in items):
        raise ValueError(f"invalid ARI id list: {ids!r}")
    return ",".join(items)


def _query(params: Mapping[str, QueryValue]) -> dict[str, str]:
    """Drop unset parameters and spell values as ARI expects (booleans as true/false)."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


def _app_args(app_args: str | Sequence[str] | None) -> str | None:
    """Stasis arguments: a string as is, or a list joined by commas (items may not hold one)."""
    if app_args is None or isinstance(app_args, str):
        return app_args
    items = list(app_args)
    if any("," in item for item in items):
        raise ValueError(f"a Stasis argument cannot contain a comma: {items!r}")
    return ",".join(items)


class AriClient:
    """REST side of ARI over one aiohttp session with Basic auth.

    `base_url` is Asterisk's HTTP server, e.g. `http://127.0.0.1:8088` (a trailing `/ari` is
    accepted too). `app` is the Stasis application, used by `originate`/`create_channel` when
    no other is given and by `AriEvents`.

    Use as `async with AriClient(...) as ari:` or call `close()`.
    """

    def __init__(
        self,
        base_url: str,
        user: str,
        password: str,
        app: str,
        *,
        request_timeout: float = 10.0,
        retry_deadline: float = 5.0,
        max_connections: int = 100,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        on_request: Callable[[str, str, float], None] | None = None,
    ) -> None:
        url = URL(base_url.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"ARI base URL must be http(s)://host[:port]: {base_url!r}")
        path = url.path.rstrip("/")
        if path.endswith("/ari"):
            path = path[: -len("/ari")]
        self.base_url = url.with_path(path or "/").with_query(None).with_fragment(None)
        self.user = user
        self.app = app
        self.retry_deadline = retry_deadline
        # A default header rather than BasicAuth: aiohttp 3.14 deprecates the auth parameter.
        self._authorization = aiohttp.encode_basic_auth(user, password)
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._max_connections = max_connections
        self._sleep = sleep
        self._clock = clock
        self._rand = rand
        # Called after every attempt with (operation, outcome, seconds): "POST
        # /channels/{id}", the HTTP status or "error", the time it took (for metrics).
        self._on_request = on_request
        self._session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ session

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared aiohttp session (created on first use, inside the running loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": self._authorization},
                # Idle connections are closed well before Asterisk's own keep-alive limit
                # (http.conf session_keep_alive, 15 s by default): otherwise a POST could be
                # sent on a connection Asterisk is closing, and aiohttp repeats only GET,
                # DELETE and the like on such a failure.
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, keepalive_timeout=5.0
                ),
                # ARI is on the same host or network: never route it through an env proxy.
                trust_env=False,
            )
        return self._session

    @property
    def events_url(self) -> URL:
        """The events websocket: ws(s)://host/ari/events?app=NAME&subscribeAll=false."""
        return self.events_url_for(self.app)

    def events_url_for(self, app: str) -> URL:
        """The events websocket of another application than the client's own."""
        scheme = "wss" if self.base_url.scheme == "https" else "ws"
        return self._url("events").with_scheme(scheme).with_query(
            {"app": app, "subscribeAll": "false"}
        )

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> AriClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ asterisk

    async def ping(self, within: float = 2.0) -> bool:
        """`GET /asterisk/ping`, once and within `within` seconds, no retries: whether
        Asterisk answers at all (a health probe)."""
        sent = self._clock()
        try:
            async with asyncio.timeout(within):
                response = await self._send("GET", self._url("asterisk", "ping"), {}, None)
        except (aiohttp.ClientError, TimeoutError, OSError):
            self._observe("GET", ("asterisk", "ping"), "error", sent)
            return False
        self._observe("GET", ("asterisk", "ping"), str(response.status), sent)
        return response.status == 200

    async def asterisk_info(self) -> JsonDict:
        """`GET /asterisk/info`: build, system, config and status of Asterisk."""
        return (await self._request("GET", ("asterisk", "info"), idempotent=True)).body

    async def set_global(self, name: str, value: str) -> None:
        """`POST /asterisk/variable`: set a global variable ("" unsets it). Sent once, no
        retries: callers that repeat it (a heartbeat) are the retry."""
        await self._request("POST", ("asterisk", "variable"),
                            params={"variable": name, "value": value}, idempotent=True,
                            retry_deadline=0.0)

    async def get_global(self, name: str) -> str:
        """`GET /asterisk/variable`: a global variable's value ("" when unset). Asked once."""
        response = await self._request("GET", ("asterisk", "variable"),
                                       params={"variable": name}, idempotent=True,
                                       retry_deadline=0.0)
        return str((response.body or {}).get("value", ""))

    # ------------------------------------------------------------------ channels

    async def originate(
        self,
        endpoint: str,
        *,
        channel_id: str,
        app: str | None = None,
        app_args: str | Sequence[str] | None = None,
        caller_id: str | None = None,
        # ARI's own parameter (seconds Asterisk lets the leg ring), not a client-side timeout.
        timeout: int | None = None,  # noqa: ASYNC109
        variables: Mapping[str, str] | None = None,
        originator: str | None = None,
        other_channel_id: str | None = None,
        formats: str | None = None,
        retry_deadline: float | None = None,
    ) -> JsonDict:
        """`POST /channels`: call `endpoint` and hand the answered channel to Stasis `app`.

        `channel_id` is required so that a retry after a lost answer cannot place a second call
        (see the module docstring). `timeout` is in seconds (Asterisk's default 30, -1 none).
        `variables` are set on the channel before it dials, e.g.
        `{"PJSIP_HEADER(add,X-Foo)": "bar"}`. `retry_deadline` overrides the client's for this
        request (short, when another Asterisk could take the call instead).
        """
        params = {
            "endpoint": endpoint,
            "app": app or self.app,
            "appArgs": _app_args(app_args),
            "callerId": caller_id,
            "timeout": timeout,
            "channelId": channel_id,
            "otherChannelId": other_channel_id,
            "originator": originator,
            "formats": formats,
        }
        return await self._new_channel(("channels",), params, channel_id, variables,
                                       retry_deadline)

    async def create_channel(
        self,
        endpoint: str,
        *,
        channel_id: str,
        app: str | None = None,
        app_args: str | Sequence[str] | None = None,
        variables: Mapping[str, str] | None = None,
        originator: str | None = None,
        other_channel_id: str | None = None,
        formats: str | None = None,
    ) -> JsonDict:
        """`POST /channels/create`: create a channel in Stasis without dialling it yet.

        Follow with `dial()` (after bridging it, for early media). Same id rules as originate.
        """
        params = {
            "endpoint": endpoint,
            "app": app or self.app,
            "appArgs": _app_args(app_args),
            "channelId": channel_id,
            "otherChannelId": other_channel_id,
            "originator": originator,
            "formats": formats,
        }
        return await self._new_channel(("channels", "create"), params, channel_id, variables)

    async def _new_channel(
        self, path: tuple[str, ...], params: dict[str, Any], channel_id: str,
        variables: Mapping[str, str] | None, retry_deadline: float | None = None,
    ) -> JsonDict:
        """POST a new channel with our own id. A repeat after a lost answer that finds the id
        taken (409) returns the channel the first attempt made."""
        _segment(channel_id)
        body = {"variables": dict(variables)} if variables else None
        response = await self._request(
            "POST", path, params=params, body=body, idempotent=True, resolve_conflict=True,
            retry_deadline=retry_deadline,
        )
        if response.status == 409:
            return await self._created_channel(channel_id)
        return response.body

    async def _created_channel(self, channel_id: str) -> JsonDict:
        # The lost attempt created the channel. If it is already gone again (a very short
        # call), only its id is known; its events (ChannelDestroyed) tell the rest.
        channel = await self.get_channel(channel_id)
        return channel if channel is not None else {"id": channel_id}

    async def dial(
        self,
        channel_id: str,
        *,
        caller: str | None = None,
        timeout: int | None = None,  # noqa: ASYNC109 - ARI's ring time, as in originate
    ) -> None:
        """`POST /channels/{channelId}/dial`: dial a channel made by `create_channel`.

        `caller` is the id of the channel that is calling (for connected line), `timeout`
        seconds before giving up.
        """
        await self._request(
            "POST", ("channels", channel_id, "dial"),
            params={"caller": caller, "timeout": timeout},
        )

    async def hangup(
        self, channel_id: str, reason: str | None = None, *, reason_code: int | None = None
    ) -> bool:
        """`DELETE /channels/{channelId}`: hang up. True if the channel existed.

        A channel that is already gone (404) counts as done: calls end on both sides at once.
        `reason` is ARI's name (normal, busy, congestion, no_answer, ...), `reason_code` a Q.850
        cause; give at most one.
        """
        response = await self._request(
            "DELETE", ("channels", channel_id),
            params={"reason": reason, "reason_code": reason_code},
            idempotent=True, accept=(404,),
        )
        return response.status != 404

    async def answer(self, channel_id: str) -> None:
        """`POST /channels/{channelId}/answer`."""
        await self._request("POST", ("channels", channel_id, "answer"), idempotent=True)

    async def ring(self, channel_id: str) -> None:
        """`POST /channels/{channelId}/ring`: indicate ringing to the caller."""
        await self._request("POST", ("channels", channel_id, "ring"), idempotent=True)

    async def ring_stop(self, channel_id: str) -> None:
        """`DELETE /channels/{channelId}/ring`."""
        await self._request("DELETE", ("channels", channel_id, "ring"), idempotent=True)

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> None:
        """`POST /channels/{channelId}/moh`: music on hold (class from musiconhold.conf)."""
        await self._request(
            "POST", ("channels", channel_id, "moh"), params={"mohClass": moh_class},
            idempotent=True,
        )

    async def stop_moh(self, channel_id: str) -> None:
        """`DELETE /channels/{channelId}/moh`."""
        await self._request("DELETE", ("channels", channel_id, "moh"), idempotent=True)

    async def play(
        self,
        channel_id: str,
        media: str | Sequence[str],
        playback_id: str | None = None,
        *,
        lang: str | None = None,
    ) -> JsonDict:
        """`POST /channels/{channelId}/play`: e.g. `sound:hello-world` or `tone:ring`.

        Several media play one after another. Returns the Playback object.
        """
        items = [media] if isinstance(media, str) else list(media)
        if not items or any("," in item for item in items):
            raise ValueError(f"invalid media list: {media!r}")
        if playback_id is not None:
            _segment(playback_id)
        response = await self._request(
            "POST", ("channels", channel_id, "play"),
            params={"media": ",".join(items), "lang": lang, "playbackId": playback_id},
        )
        return response.body

    async def stop_playback(self, playback_id: str) -> bool:
        """`DELETE /playbacks/{playbackId}`: False if Asterisk no longer knows it (404: done).

        True only means Asterisk still knew the playback: it keeps a finished one for a moment.
        """
        response = await self._request(
            "DELETE", ("playbacks", playback_id), idempotent=True, accept=(404,)
        )
        return response.status != 404

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        """`POST /channels/{channelId}/variable`: set a channel variable or function."""
        await self._request(
            "POST", ("channels", channel_id, "variable"),
            params={"variable": name, "value": value}, idempotent=True,
        )

    async def get_variable(self, channel_id: str, name: str) -> str | None:
        """`GET /channels/{channelId}/variable`: the value, or None when ARI answers 404.

        ARI uses 404 both for an unknown channel and for an unset variable.
        """
        response = await self._request(
            "GET", ("channels", channel_id, "variable"), params={"variable": name},
            idempotent=True, accept=(404,),
        )
        if response.status == 404:
            return None
        return str(response.body.get("value", ""))

    async def list_channels(self) -> list[JsonDict]:
        """`GET /channels`: every channel Asterisk has (not only this app's)."""
        return (await self._request("GET", ("channels",), idempotent=True)).body

    async def get_channel(self, channel_id: str) -> JsonDict | None:
        """`GET /channels/{channelId}`: the channel, or None if there is none."""
        response = await self._request(
            "GET", ("channels", channel_id), idempotent=True, accept=(404,)
        )
        return None if response.status == 404 else response.body

    async def move(
        self, channel_id: str, app: str, app_args: str | Sequence[str] | None = None
    ) -> bool:
        """`POST /channels/{channelId}/move`: hand a channel that is in Stasis to another
        application (e.g. a surviving instance's). False if the channel is gone."""
        response = await self._request(
            "POST", ("channels", channel_id, "move"),
            params={"app": app, "appArgs": _app_args(app_args)}, accept=(404,),
        )
        return response.status != 404

    async def continue_in_dialplan(
        self,
        channel_id: str,
        *,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        label: str | None = None,
    ) -> None:
        """`POST /channels/{channelId}/continue`: leave Stasis, back to the dialplan."""
        await self._request(
            "POST", ("channels", channel_id, "continue"),
            params={
                "context": context, "extension": extension, "priority": priority,
                "label": label,
            },
        )

    # ------------------------------------------------------------------ bridges

    async def create_bridge(
        self, bridge_id: str, type: str = "mixing", *, name: str | None = None
    ) -> JsonDict:
        """`POST /bridges/{bridgeId}`: a bridge with a caller-chosen id.

        `type` is a comma list such as `mixing` or `mixing,proxy_media` (order matters).
        """
        response = await self._request(
            "POST", ("bridges", bridge_id), params={"type": type, "name": name},
            idempotent=True, resolve_conflict=True,
        )
        if response.status == 409:
            bridge = await self.get_bridge(bridge_id)
            return bridge if bridge is not None else {"id": bridge_id}
        return response.body

    async def get_bridge(self, bridge_id: str) -> JsonDict | None:
        """`GET /bridges/{bridgeId}`: the bridge, or None if there is none."""
        response = await self._request(
            "GET", ("bridges", bridge_id), idempotent=True, accept=(404,)
        )
        return None if response.status == 404 else response.body

    async def add_channel(
        self,
        bridge_id: str,
        channel_ids: str | Sequence[str],
        *,
        role: str | None = None,
        absorb_dtmf: bool | None = None,
        mute: bool | None = None,
        inhibit_connected_line_updates: bool | None = None,
    ) -> None:
        """`POST /bridges/{bridgeId}/addChannel`: put one or more channels in the bridge."""
        await self._request(
            "POST", ("bridges", bridge_id, "addChannel"),
            params={
                "channel": _id_list(channel_ids), "role": role, "absorbDTMF": absorb_dtmf,
                "mute": mute, "inhibitConnectedLineUpdates": inhibit_connected_line_updates,
            },
        )

    async def remove_channel(self, bridge_id: str, channel_ids: str | Sequence[str]) -> None:
        """`POST /bridges/{bridgeId}/removeChannel`."""
        await self._request(
            "POST", ("bridges", bridge_id, "removeChannel"),
            params={"channel": _id_list(channel_ids)},
        )

    async def destroy_bridge(self, bridge_id: str) -> bool:
        """`DELETE /bridges/{bridgeId}`: True if this call destroyed it, False if it was gone.

        404 counts as done. So does 409 "Bridge not in Stasis application": Asterisk answers
        that for a moment (about a millisecond) while a bridge it has just destroyed is still
        being torn down, so a second destroy racing the first would otherwise fail. For a bridge
        this app created (ids are chosen by the caller) there is no other cause of a 409.
        """
        response = await self._request(
            "DELETE", ("bridges", bridge_id), idempotent=True, accept=(404, 409)
        )
        return 200 <= response.status < 300

    async def list_bridges(self) -> list[JsonDict]:
        """`GET /bridges`: every bridge Asterisk has."""
        return (await self._request("GET", ("bridges",), idempotent=True)).body

    # ------------------------------------------------------------------ applications

    async def get_application(self, app: str | None = None) -> JsonDict | None:
        """`GET /applications/{applicationName}`: the application with the channels,
        bridges and endpoints it is subscribed to, or None if Asterisk does not know it."""
        response = await self._request(
            "GET", ("applications", app or self.app), idempotent=True, accept=(404,)
        )
        return None if response.status == 404 else response.body

    async def set_event_filter(self, allowed: Sequence[str], app: str | None = None) -> None:
        """`PUT /applications/{app}/eventFilter`: send only these event types to `app`.

        Both lists are set, so that no older `disallowed` list lingers."""
        await self._request(
            "PUT", ("applications", app or self.app, "eventFilter"),
            body={"allowed": [{"type": kind} for kind in allowed], "disallowed": []},
            idempotent=True,
        )

    # ------------------------------------------------------------------ transport

    def _url(self, *segments: str) -> URL:
        path = self.base_url.raw_path.rstrip("/") + "/ari/" + "/".join(
            _segment(s) for s in segments
        )
        # encoded=True: the segments are quoted already and must not be re-quoted or
        # normalised (a quoted "/" must stay inside its segment).
        return self.base_url.with_path(path, encoded=True)

    async def _request(
        self,
        method: str,
        segments: tuple[str, ...],
        *,
        params: Mapping[str, QueryValue] | None = None,
        body: JsonDict | None = None,
        idempotent: bool = False,
        accept: tuple[int, ...] = (),
        resolve_conflict: bool = False,
        retry_deadline: float | None = None,
    ) -> _Response:
        """One ARI call with the retry rules of the module docstring.

        Returns 2xx answers and the statuses in `accept`; with `resolve_conflict`, also a 409
        that follows an attempt whose outcome is unknown. Raises AriError or AriUnavailable.
        """
        url = self._url(*segments)
        path = "/" + "/".join(segments)
        query = _query(params or {})
        backoff = Backoff(initial=0.1, maximum=1.0, rand=self._rand)
        started = self._clock()
        maybe_done = False  # an earlier attempt may have been carried out
        while True:
            failure: Exception
            cause: BaseException | None = None
            sent = self._clock()
            try:
                response = await self._send(method, url, query, body)
                self._observe(method, segments, str(response.status), sent)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                self._observe(method, segments, "error", sent)
                # Never reached Asterisk: safe to repeat whatever the call is.
                failure = AriUnavailable(method, path, _describe(exc), reached=maybe_done)
                cause = exc
                retry = True
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._observe(method, segments, "error", sent)
                failure, cause = AriUnavailable(method, path, _describe(exc)), exc
                retry = idempotent
                maybe_done = True
            else:
                status = response.status
                if 200 <= status < 300 or status in accept:
                    return response
                if status == 409 and resolve_conflict and maybe_done:
                    return response
                failure = AriError(status, method, path, response.body)
                retry = status == 503
            delay = backoff.next()
            deadline = self.retry_deadline if retry_deadline is None else retry_deadline
            if not retry or self._clock() + delay - started > deadline:
                raise failure from cause
            log.debug("ARI %s %s: %s; retrying in %.2f s", method, path, failure, delay)
            await self._sleep(delay)

    def _observe(self, method: str, segments: tuple[str, ...], outcome: str,
                 sent: float) -> None:
        if self._on_request is not None:
            self._on_request(operation(method, segments), outcome, self._clock() - sent)

    async def _send(
        self, method: str, url: URL, query: dict[str, str], body: JsonDict | None
    ) -> _Response:
        async with self.session.request(
            method, url, params=query or None, json=body, timeout=self._timeout
        ) as response:
            text = await response.text()
            return _Response(response.status, _parse(text, response.content_type))


# The path segments that name an ARI operation rather than an object (ids are all others).
_LITERALS = frozenset({
    "channels", "bridges", "applications", "asterisk", "playbacks", "info", "ping", "create",
    "ring",
    "moh", "play", "dial", "variable", "answer", "addChannel", "removeChannel", "move",
    "continue", "eventFilter",
})


def operation(method: str, segments: tuple[str, ...]) -> str:
    """The ARI operation a request is, with ids as {id}: `POST /channels/{id}/dial`."""
    return method + " /" + "/".join(s if s in _LITERALS else "{id}" for s in segments)


def _parse(text: str, content_type: str) -> Any:
    if not text:
        return None
    if content_type == "application/json":
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
