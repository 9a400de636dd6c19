"""Command line: ``orderworker run|demo|submit|audit|config|deadletters``.

Exit codes: 0 success, 1 an order was rejected or failed, 2 bad input or
configuration, 3 the broker or the audit store could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from importlib import metadata
from typing import Any, TypeVar

from worker.settings import ConfigError, Settings, load_settings

T = TypeVar("T")


def version() -> str:
    try:
        return metadata.version("orderworker")
    except metadata.PackageNotFoundError:
        return "unknown"


def checked_settings() -> Settings:
    """Settings plus the start-up checks that need the driver registry; ConfigError."""
    from worker.config import driver_problems
    from worker.exchange.factory import ExchangeFactory

    settings = load_settings()
    problems = driver_problems(settings, ExchangeFactory(settings).drivers())
    if problems:
        raise ConfigError(problems)
    return settings


def report(exc: ConfigError) -> int:
    print("orderworker: the configuration has problems:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  - {problem}", file=sys.stderr)
    print("settings reference: docs/settings.md", file=sys.stderr)
    return 2


def run_loop(main: Coroutine[Any, Any, T], kind: str = "uvloop") -> T:
    """``asyncio.run`` on uvloop (``kind="uvloop"``, when installed) or the standard loop."""
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(main)
    return asyncio.run(main)


async def _run_worker(settings: Settings) -> None:
    from worker.app import Worker
    from worker.logs import setup_logging
    from worker.observability import serve_observability

    setup_logging(settings.log_level, settings.log_json)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(settings)
    server = await serve_observability(worker, settings.metrics_port)
    try:
        await worker.run(stop)
    finally:
        if server is not None:
            await server.cleanup()


async def _reshard(args: argparse.Namespace) -> int:
    from aio_pika.exceptions import AMQPConnectionError

    from worker.broker.contract import TopologyError
    from worker.broker.reshard import reshard
    from worker.config import unreachable

    try:
        r = await reshard(args.amqp_url, args.prefix, args.to, settle_s=args.settle_s)
    except TopologyError as exc:
        print(f"orderworker reshard: {exc}", file=sys.stderr)
        return 2
    except (AMQPConnectionError, OSError) as exc:
        print(unreachable(args.amqp_url, exc), file=sys.stderr)
        return 3
    print(f"prefix {args.prefix}: {r.old} -> {r.new} shards; moved {r.staged} messages "
          f"({r.commands} commands, {r.records} tracking records); start the workers with "
          f"OW_SHARDS={r.new}")
    return 0


def config_check() -> int:
    """Print the effective configuration (secrets redacted); non-zero on problems."""
    from worker.config import redacted

    try:
        settings = checked_settings()
    except ConfigError as exc:
        return report(exc)
    print(json.dumps(redacted(settings, os.environ), indent=2, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orderworker")
    parser.add_argument("--version", action="version", version=f"orderworker {version()}")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("run", help="run a worker (settings from OW_* environment)")
    sub.add_parser("demo", help="start a worker on the paper exchange and run sample orders")
    submit = sub.add_parser("submit", help="submit one order and print its events")
    from worker.submit import add_submit_args
    add_submit_args(submit)
    audit = sub.add_parser("audit", help="record events into the audit store, or query it")
    from worker.audit.cli import add_audit_args
    add_audit_args(audit)
    config = sub.add_parser("config", help="check the configuration")
    config.add_argument("action", choices=["check"],
                        help="print the effective settings, secrets redacted")
    reshard = sub.add_parser("reshard", help="change the shard count (every worker stopped; "
                                             "see docs/operations.md)")
    reshard.add_argument("--to", type=int, required=True, help="the new shard count")
    reshard.add_argument("--amqp-url", default=os.environ.get(
        "OW_AMQP_URL", os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")))
    reshard.add_argument("--prefix", default=os.environ.get("OW_PREFIX", "orderworker"))
    reshard.add_argument("--settle-s", type=float, default=2.0,
                         help="wait after recording the change before checking again that "
                              "no worker consumes")
    dead = sub.add_parser("deadletters", help="inspect or re-publish dead letters")
    from worker.deadletters_cli import add_deadletter_args
    add_deadletter_args(dead)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd == "run":
        try:
            settings = checked_settings()
        except ConfigError as exc:
            return report(exc)
        from aio_pika.exceptions import AMQPConnectionError, ChannelPreconditionFailed

        from worker.broker.contract import TopologyError
        from worker.config import unreachable
        try:
            run_loop(_run_worker(settings), settings.event_loop)
        except AMQPConnectionError as exc:
            print(f"orderworker: {unreachable(settings.amqp_url, exc)}", file=sys.stderr)
            return 3
        except TopologyError as exc:
            print(f"orderworker: {exc}", file=sys.stderr)
            return 2
        except ChannelPreconditionFailed as exc:
            print(f"orderworker: the broker holds queues of prefix {settings.prefix!r} declared "
                  f"with other arguments ({exc}); OW_DELIVERY_LIMIT and OW_QUORUM_GROUP_SIZE "
                  "must match the running workers (see docs/operations.md)", file=sys.stderr)
            return 2
    elif args.cmd == "config":
        return config_check()
    elif args.cmd == "demo":
        try:
            from worker.lab.demo import main as demo_main
        except ModuleNotFoundError:
            print("the demo is lab tooling and is not in this image: run `make demo` in a "
                  "checkout", file=sys.stderr)
            return 2
        return asyncio.run(demo_main())
    elif args.cmd == "audit":
        from worker.audit.cli import audit_main
        return asyncio.run(audit_main(args))
    elif args.cmd == "submit":
        from worker.submit import submit_main
        return asyncio.run(submit_main(args))
    elif args.cmd == "reshard":
        return asyncio.run(_reshard(args))
    elif args.cmd == "deadletters":
        from worker.deadletters_cli import deadletters_main
        return asyncio.run(deadletters_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
