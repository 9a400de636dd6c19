"""``orderworker submit``: place (or cancel) one order by hand and print its events."""

from __future__ import annotations

import argparse
import os
import uuid
from datetime import UTC, datetime

import msgspec

from schemas import CancelOrder, PlaceOrder
from schemas.commands import Command
from schemas.events import encode_event
from worker.client import OrderClient


def add_submit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--amqp-url", default=os.environ.get("AMQP_URL",
                   os.environ.get("OW_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")))
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
    common = {"command_id": args.command_id or f"cli-{uuid.uuid4().hex[:16]}",
              "account": args.account, "exchange": args.exchange, "symbol": args.symbol,
              "created_at": datetime.now(UTC)}
    if args.cancel:
        return CancelOrder(target_command_id=args.cancel, **common)
    if not args.side or not args.amount:
        raise SystemExit("--side and --amount are required to place an order")
    return PlaceOrder(side=args.side, type=args.type, amount=args.amount, price=args.price,
                      timeout_s=args.timeout_s, max_slippage_bps=args.max_slippage_bps,
                      **common)


async def submit_main(args: argparse.Namespace) -> int:
    try:
        command = build_command(args)
    except msgspec.ValidationError as exc:
        print(f"invalid order: {exc}")
        return 2
    async with OrderClient(args.amqp_url, prefix=args.prefix, shards=args.shards,
                           watch=f"order.{args.account}.#",
                           quorum_group_size=args.quorum_group_size) as client:
        events = await client.submit(command, timeout_s=args.wait_s)
    for event in events:
        print(encode_event(event).decode())
    return 0
