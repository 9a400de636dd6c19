"""``orderworker deadletters list|replay``: inspect dead letters, re-publish one.

A replayed command goes through the worker's normal path: it is looked up by
its client order id first, so an order that already exists is adopted, never
placed twice; a command older than ``OW_MAX_COMMAND_AGE_S`` is refused as stale.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from aio_pika.exceptions import AMQPConnectionError, ChannelNotFoundEntity

from worker.broker.deadletters import ReplayError, peek_dead_letters, replay_dead_letter
from worker.broker.topology import Names
from worker.config import unreachable


def add_deadletter_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "replay"])
    p.add_argument("message_id", nargs="?",
                   help="replay: the dead letter's message id or command id (see list)")
    p.add_argument("--amqp-url", default=os.environ.get(
        "OW_AMQP_URL", os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")))
    p.add_argument("--prefix", default=os.environ.get("OW_PREFIX", "orderworker"))
    p.add_argument("--shards", type=int, default=os.environ.get("OW_SHARDS", "0"),
                   help="replay: check the workers run this many (default: theirs)")
    p.add_argument("--limit", type=int, default=100, help="list: at most this many")
    p.add_argument("--json", action="store_true", help="list: one JSON object per line")


async def deadletters_main(args: argparse.Namespace) -> int:
    names = Names(args.prefix, args.shards)
    if args.action == "replay" and not args.message_id:
        print("replay needs the message id of a dead letter (see: deadletters list)",
              file=sys.stderr)
        return 2
    try:
        if args.action == "list":
            letters = await peek_dead_letters(args.amqp_url, names, args.limit)
            for d in letters:
                if args.json:
                    print(json.dumps({"message_id": d.message_id, "command_id": d.command_id,
                                      "reason": d.reason,
                                      "x_death": d.deaths,
                                      "body": d.body.decode(errors="replace")}))
                else:
                    deaths = "; ".join(f"{x.get('reason')} from {x.get('queue')} "
                                       f"x{x.get('count')}" for x in d.deaths) or "-"
                    print(f"{d.position:>4}  {d.command_id or d.message_id or '-':<36} "
                          f"reason={d.reason}  "
                          f"x-death: {deaths}\n      {d.body[:160].decode(errors='replace')}")
            if not args.json:
                print(f"{len(letters)} dead letter(s) in {names.dead_queue}"
                      + (" (limit reached)" if len(letters) >= args.limit else ""))
            return 0
        letter = await replay_dead_letter(args.amqp_url, names, args.message_id)
        print(f"replayed {args.message_id} (was dead-lettered: {letter.reason}) "
              f"to {names.commands}")
        return 0
    except ReplayError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except ChannelNotFoundEntity:
        print(f"no queue {names.dead_queue}: is OW_PREFIX={args.prefix} right, and has a "
              "worker declared the topology?", file=sys.stderr)
        return 2
    except (AMQPConnectionError, OSError) as exc:
        print(unreachable(args.amqp_url, exc), file=sys.stderr)
        return 3
