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

from schemas import CancelRejected, OrderAccepted, OrderFailed, OrderRejected
from schemas.commands import Command, PlaceOrder
from schemas.events import encode_event
from worker.client import (
    InvalidCommandError,
    NoWorkerError,
    OrderClient,
    OutcomeTimeoutError,
    TopologyMismatchError,
    validate_command,
)
from worker.config import unreachable
from worker.messages import explain


class InvalidInput(ValueError):
    """The command line describes no valid command."""


def add_submit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--amqp-url", default=os.environ.get(
        "OW_AMQP_URL", os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")))
    p.add_argument("--prefix", default=os.environ.get("OW_PREFIX", "orderworker"))
    p.add_argument("--shards", type=int,
                   default=int(os.environ["OW_SHARDS"]) if os.environ.get("OW_SHARDS") else None,
                   help="check the workers run this many shards (default: follow the "
                        "workers' recorded shard count)")
    p.add_argument("--command-id", default=None)
    p.add_argument("--account", required=True)
    p.add_argument("--exchange", default="paper")
    p.add_argument("--symbol", help="required to place; optional for --cancel/--cancel-all")
    p.add_argument("--side", choices=["buy", "sell"])
    p.add_argument("--type", choices=["market", "limit"], default="market")
    p.add_argument("--amount")
    p.add_argument("--price")
    p.add_argument("--timeout-s", type=float, default=None,
                   help="cancel the order this long after placing it (default: never; a "
                        "limit order rests until filled or canceled)")
    p.add_argument("--max-slippage-bps", type=int, default=50)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--cancel", metavar="TARGET_COMMAND_ID",
                      help="send a CancelOrder for this command instead of placing")
    what.add_argument("--cancel-all", action="store_true",
                      help="cancel every open order of the account (optionally --symbol)")
    p.add_argument("--wait-s", type=float, default=120.0,
                   help="how long to wait for the outcome (or, with --until accepted, the "
                        "first event)")
    p.add_argument("--until", choices=["outcome", "accepted"], default="outcome",
                   help="outcome: wait for the command's outcome (a resting limit order "
                        "waits until filled, canceled or timed out); accepted: return after "
                        "the order's first event (cancel it later with --cancel)")


def build_command(args: argparse.Namespace) -> Command:
    """The command the arguments describe, validated like the worker will; InvalidInput."""
    raw: dict[str, Any] = {
        "command_id": args.command_id or f"cli-{uuid.uuid4().hex[:16]}",
        "account": args.account, "exchange": args.exchange, "created_at": datetime.now(UTC)}
    if args.symbol is not None:
        raw["symbol"] = args.symbol
    if args.cancel:
        raw.update(kind="cancel_order", target_command_id=args.cancel)
    elif args.cancel_all:
        raw.update(kind="cancel_all")
    else:
        if not args.symbol or not args.side or not args.amount:
            raise InvalidInput("--symbol, --side and --amount are required to place an order "
                               "(or give --cancel COMMAND_ID / --cancel-all)")
        raw.update(kind="place_order", side=args.side, type=args.type, amount=args.amount,
                   max_slippage_bps=args.max_slippage_bps)
        if args.timeout_s is not None:
            raw["timeout_s"] = args.timeout_s
        if args.price is not None:
            raw["price"] = args.price
    try:
        command: Command = msgspec.convert(raw, Command)
        validate_command(command)
    except msgspec.ValidationError as exc:
        raise InvalidInput(explain(exc, Command, raw)) from None
    except InvalidCommandError as exc:
        raise InvalidInput(str(exc)) from None
    return command


async def submit_main(args: argparse.Namespace) -> int:
    try:
        command = build_command(args)
    except InvalidInput as exc:
        print(f"invalid order: {exc}", file=sys.stderr)
        return 2
    try:
        async with OrderClient(args.amqp_url, prefix=args.prefix, shards=args.shards,
                               watch=f"order.{args.account}.#") as client:
            await client.wait_for_topology(min(args.wait_s, 10.0))  # a worker just started
            if args.until == "accepted" and isinstance(command, PlaceOrder):
                await client.send(command)
                await client.wait_first(command.command_id, args.wait_s)
                events = client.history(command.command_id)
            else:
                events = await client.submit(command, timeout_s=args.wait_s)
    except InvalidCommandError as exc:
        print(f"invalid order: {exc}", file=sys.stderr)
        return 2
    except TopologyMismatchError as exc:
        print(f"orderworker submit: {exc}", file=sys.stderr)
        return 2
    except (NoWorkerError, OutcomeTimeoutError) as exc:  # before OSError (TimeoutError)
        print(f"orderworker submit: {exc}", file=sys.stderr)
        return 3
    except (AMQPConnectionError, OSError) as exc:
        print(unreachable(args.amqp_url, exc), file=sys.stderr)
        return 3
    for event in events:
        print(encode_event(event).decode())
    last = events[-1] if events else None
    if isinstance(last, OrderRejected | OrderFailed | CancelRejected):
        verb = {OrderRejected: "order rejected", OrderFailed: "order failed",
                CancelRejected: "cancel rejected"}[type(last)]
        print(f"{verb} ({last.reason}): {last.message}", file=sys.stderr)
        return 1
    if isinstance(last, OrderAccepted) and args.until == "accepted":
        print(f"{command.command_id} is accepted; cancel it with: orderworker submit "
              f"--account {command.account} --cancel {command.command_id}", file=sys.stderr)
    return 0
