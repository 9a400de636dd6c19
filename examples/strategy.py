"""A strategy's side of orderworker: place a resting limit, watch it, cancel it, cancel all.

Needs a broker and a worker (``orderworker run``; the paper exchange by default):

    AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ OW_PREFIX=orderworker python examples/strategy.py

Prints each step; exits 1 when an outcome is not the expected one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime

import msgspec

from schemas import CancelAllDone, CancelDone, OrderAccepted, OrderFilled, PlaceOrder
from schemas.events import event_kind
from worker.client import InvalidCommandError, OrderClient, OrderClientError


def limit(account: str, exchange: str, price: str) -> PlaceOrder:
    return PlaceOrder(command_id=f"ex-{uuid.uuid4().hex[:12]}", account=account,
                      exchange=exchange, symbol="BTC/USDT", side="buy", type="limit",
                      amount="0.01", price=price, time_in_force="GTC",
                      created_at=datetime.now(UTC))


async def run(amqp_url: str, prefix: str, account: str, exchange: str) -> int:
    async with OrderClient(amqp_url, prefix=prefix, watch=f"order.{account}.#") as client:
        await client.wait_for_workers(30)

        # 1. a good-till-canceled limit buy below the market rests on the book
        first = limit(account, exchange, "57500")
        await client.send(first)
        async for event in client.events(first.command_id, idle_timeout_s=30):
            print(f"{first.command_id}: {event_kind(event)}")
            if isinstance(event, OrderAccepted):
                break  # it rests; we stop watching (the worker keeps following it)

        # 2. cancel it: the cancel has its own outcome, the order ends canceled
        outcome = await client.cancel(first, timeout_s=30)
        print(f"cancel: {event_kind(outcome)} ({getattr(outcome, 'order_status', outcome)})")
        ended = [event_kind(e) async for e in client.events(first.command_id, idle_timeout_s=30)]
        print(f"{first.command_id} events: {', '.join(ended)}")

        # 3. two more resting orders, then cancel everything of the account
        rest = [limit(account, exchange, p) for p in ("57000", "56500")]
        for order in rest:
            await client.send(order)
            await client.wait_first(order.command_id, 30)
        swept = await client.cancel_all(account, exchange, timeout_s=30)
        print(f"cancel_all: {event_kind(swept)}")

        # 4. a market order, and what an invalid one looks like (nothing is published)
        market = PlaceOrder(command_id=f"ex-{uuid.uuid4().hex[:12]}", account=account,
                            exchange=exchange, symbol="BTC/USDT", side="buy", type="market",
                            amount="0.001", created_at=datetime.now(UTC))
        filled = (await client.submit(market, timeout_s=30))[-1]
        print(f"market: {event_kind(filled)} at {filled.average_price}")
        try:
            await client.send(msgspec.structs.replace(market, command_id="ex-bad", amount="-1"))
        except InvalidCommandError as exc:
            print(f"invalid: {exc}")

    ok = (isinstance(outcome, CancelDone) and outcome.order_status == "canceled"
          and ended[-1] == "order_canceled" and isinstance(swept, CancelAllDone)
          and isinstance(filled, OrderFilled))
    return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--amqp-url", default=os.environ.get("AMQP_URL",
                                                        "amqp://guest:guest@127.0.0.1:5672/"))
    p.add_argument("--prefix", default=os.environ.get("OW_PREFIX", "orderworker"))
    p.add_argument("--account", default="example-desk")
    p.add_argument("--exchange", default="paper")
    a = p.parse_args()
    try:
        return asyncio.run(run(a.amqp_url, a.prefix, a.account, a.exchange))
    except OrderClientError as exc:  # every client error says what to check
        print(f"strategy: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
