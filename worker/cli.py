"""Command line: ``orderworker run|demo|submit|audit|chaos|bench``."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence


async def _run_worker() -> None:
    from worker.app import Worker
    from worker.logs import setup_logging
    from worker.observability import serve_observability
    from worker.settings import load_settings

    settings = load_settings()
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orderworker")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("run", help="run a worker (settings from OW_* environment)")
    sub.add_parser("demo", help="start a worker on the paper exchange and run sample orders")
    submit = sub.add_parser("submit", help="submit one order and print its events")
    from worker.submit import add_submit_args
    add_submit_args(submit)
    audit = sub.add_parser("audit", help="record events into the audit store, or query it")
    from worker.audit.cli import add_audit_args
    add_audit_args(audit)
    args = parser.parse_args(argv)
    if args.cmd == "run":
        asyncio.run(_run_worker())
    elif args.cmd == "demo":
        from worker.lab.demo import main as demo_main
        return asyncio.run(demo_main())
    elif args.cmd == "audit":
        from worker.audit.cli import audit_main
        return asyncio.run(audit_main(args))
    elif args.cmd == "submit":
        from worker.submit import submit_main
        return asyncio.run(submit_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
