"""The calls this instance runs: one registry, by call id, with the channel index that ARI
events are routed by."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from c2c_ari.stasis.call import Call


class CallRegistry:
    def __init__(self) -> None:
        self._calls: dict[str, tuple[Call, asyncio.Task[dict[str, Any]]]] = {}
        self._by_channel: dict[str, Call] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def __iter__(self) -> Iterator[Call]:
        return iter([call for call, _task in self._calls.values()])

    def add(self, call: Call, task: asyncio.Task[dict[str, Any]]) -> None:
        self._calls[call.plan.call_id] = (call, task)
        for channel_id in call.channel_ids:
            self._by_channel[channel_id] = call

    def remove(self, call: Call) -> None:
        self._calls.pop(call.plan.call_id, None)
        for channel_id in call.channel_ids:
            if self._by_channel.get(channel_id) is call:
                del self._by_channel[channel_id]

    def get(self, call_id: str) -> Call | None:
        found = self._calls.get(call_id)
        return None if found is None else found[0]

    def task(self, call_id: str) -> asyncio.Task[dict[str, Any]] | None:
        found = self._calls.get(call_id)
        return None if found is None else found[1]

    def tasks(self) -> dict[str, asyncio.Task[dict[str, Any]]]:
        """Each call's task, by call id (a copy)."""
        return {call_id: task for call_id, (_call, task) in self._calls.items()}

    def by_channel(self, channel_id: str) -> Call | None:
        return self._by_channel.get(channel_id)

    def owns_channel(self, channel_id: str) -> bool:
        return channel_id in self._by_channel

    def bridge_ids(self) -> set[str]:
        return {call.plan.bridge_id for call, _task in self._calls.values()}

    def of_clicktocall(self, c2c_id: str) -> list[Call]:
        return [call for call, _task in self._calls.values()
                if call.plan.clicktocall_id == c2c_id]
