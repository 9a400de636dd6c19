"""``orderworker submit``: place (or cancel) one order by hand and print its events.

The command is validated before anything is published (plain-language errors,
exit 2). Exit 1 when the order ends rejected or failed (the reason is printed),
3 when the broker cannot be reached or no worker answers in time.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from aio_pika.exceptions import AMQPConnectionError

from schemas import OrderFailed, OrderRejected
from schemas.commands import Command
from schemas.events import encode_event
from worker.client import OrderClient
from worker.config import redact_url
from worker.messages import explain


class InvalidInput(ValueError):
    """The command line describes no valid command."""


def add_submit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--amqp-url", default=os.environ.get(
        "OW_AMQP_URL", os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")))
    p.add_argument("--prefix", default=os.environ.get("OW_PREFIX", "orderworker"))
    p.add_argument("--shards", type=int, default=int(os.environ.get("OW_SHARDS", "4")))
    p.add_argument("--quorum-group-size", type=int,
                   default=int(os.environ["OW_QUORUM_GROUP_SIZE"])
                   if os.environ.get("OW_QUORUM_GROUP_SIZE") else None,
                   help="replicas per quorum queue, as the workers declare them "
                        "(env OW_QUORUM_GROUP_SIZE; default: the broker's)")
    p.add_argument("--command-id", default=None)
    p.add_argument("--account", required=True)
    p.add_argument("--exchange", default="paper")
    p.add_argument("--symbol", required=True)
    p.add_argument("--side", choices=["buy", "sell"])
    p.add_argument("--type", choices=["market", "limit"], default="market")
    p.add_argument("--amount")
    p.add_argument("--price")
    p.add_argument("--timeout-s", type=float, default=30.0)
    p.add_argument("--max-slippage-bps", type=int, default=50)
    p.add_argument("--cancel", metavar="TARGET_COMMAND_ID",
                   help="send a CancelOrder for this command instead of placing")
    p.add_argument("--wait-s", type=float, default=120.0)


def build_command(args: argparse.Namespace) -> Command:
    """The command the arguments describe, validated like the worker will; InvalidInput."""
    raw: dict[str, Any] = {
        "command_id": args.command_id or f"cli-{uuid.uuid4().hex[:16]}",
        "account": args.account, "exchange": args.exchange, "symbol": args.symbol,
        "created_at": datetime.now(UTC)}
    if args.cancel:
        raw.update(kind="cancel_order", target_command_id=args.cancel)
    else:
        if not args.side or not args.amount:
            raise InvalidInput("--side and --amount are required to place an order")
        raw.update(kind="place_order", side=args.side, type=args.type, amount=args.amount,
                   timeout_s=args.timeout_s, max_slippage_bps=args.max_slippage_bps)
        if args.price is not None:
            raw["price"] = args.price
    try:
        command: Command = msgspec.convert(raw, Command)
    except msgspec.ValidationError as exc:
        raise InvalidInput(explain(exc, Command, raw)) from None
    return command


async def submit_main(args: argparse.Namespace) -> int:
    try:
        command = build_command(args)
    except InvalidInput as exc:
        print(f"invalid order: {exc}", file=sys.stderr)
        return 2
    try:
        async with OrderClient(args.amqp_url, prefix=args.prefix, shards=args.shards,
                               watch=f"order.{args.account}.#",
                               quorum_group_size=args.quorum_group_size) as client:
            events = await client.submit(command, timeout_s=args.wait_s)
    except TimeoutError:  # before OSError, of which it is a subclass
        print(f"no terminal event for {command.command_id} within {args.wait_s:g} s: is a "
              f"worker running with OW_PREFIX={args.prefix} and OW_SHARDS={args.shards}?",
              file=sys.stderr)
        return 3
    except (AMQPConnectionError, OSError) as exc:
        print(f"cannot reach the broker at {redact_url(args.amqp_url)}: {exc!r}",
              file=sys.stderr)
        return 3
    for event in events:
        print(encode_event(event).decode())
    last = events[-1] if events else None
    if isinstance(last, OrderRejected | OrderFailed):
        verb = "rejected" if isinstance(last, OrderRejected) else "failed"
        print(f"order {verb} ({last.reason}): {last.message}", file=sys.stderr)
        return 1
    return 0
