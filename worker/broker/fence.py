"""Fencing: proof that this worker still holds the deliveries of one AMQP channel.

The broker hands a command to another consumer only after the channel it was
delivered on is closed (connection lost, heartbeat missed, channel error); it never
does while that channel is open. A synchronous method on that very channel
(``basic.qos`` with the prefetch it already has: no effect) that gets its reply proves
the channel was still open when the broker processed it, so no redelivery can have
happened before the moment we sent it. See worker.orders.place for how creates use it.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

from worker.errors import FenceLost


class ChannelFence:
    """Round trips on one underlying channel, shared by every delivery it carried."""

    def __init__(self, channel: Any, prefetch: int, timeout_s: float) -> None:
        self._channel = channel
        self._prefetch = prefetch
        self._timeout_s = timeout_s
        self._proven_at = float("-inf")
        self._lock = asyncio.Lock()
        self.round_trips = 0

    async def proven_at(self, max_age_s: float) -> float:
        if time.monotonic() - self._proven_at <= max_age_s:
            return self._proven_at
        async with self._lock:  # concurrent creates share one round trip
            if time.monotonic() - self._proven_at <= max_age_s:
                return self._proven_at
            sent = time.monotonic()
            try:
                if self._channel.is_closed:
                    raise ConnectionError("channel closed")
                await self._channel.basic_qos(prefetch_count=self._prefetch,
                                              timeout=self._timeout_s)
            except Exception as exc:
                raise FenceLost(f"cannot prove this worker still holds the command "
                                     f"(broker round trip failed: {exc!r})") from exc
            self.round_trips += 1
            self._proven_at = sent
        return self._proven_at


class MessageFence:
    """The Fence of one delivery: its channel's, looked up when first needed."""

    def __init__(self, fences: BrokerFences, message: Any) -> None:
        self._fences = fences
        self._message = message

    async def proven_at(self, max_age_s: float) -> float:
        try:
            channel = self._message.channel  # raises once that channel is closed
        except Exception as exc:
            raise FenceLost(f"the channel this command came on is gone: {exc!r}"
                                 ) from exc
        return await self._fences.of(channel).proven_at(max_age_s)


class BrokerFences:
    """One ChannelFence per underlying channel (a reconnect brings a new channel, whose
    round trips prove nothing about deliveries of the old one)."""

    def __init__(self, prefetch: int, timeout_s: float) -> None:
        self._prefetch = prefetch
        self._timeout_s = timeout_s
        self._by_channel: weakref.WeakKeyDictionary[Any, ChannelFence] = (
            weakref.WeakKeyDictionary())

    def of(self, channel: Any) -> ChannelFence:
        fence = self._by_channel.get(channel)
        if fence is None:
            fence = self._by_channel[channel] = ChannelFence(channel, self._prefetch,
                                                             self._timeout_s)
        return fence

    def for_message(self, message: Any) -> MessageFence:
        return MessageFence(self, message)
