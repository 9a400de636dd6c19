"""Start-up reconciliation: adopt open orders this system placed but nobody follows.

Commands still in a queue are redelivered and reconcile themselves. What is
left are *orphans*: open ``ow-`` orders whose command was dead-lettered after
an unresolved failure, or whose worker died after its command was settled. For
each configured ``account:exchange`` whose shard this worker prefers, after a
grace period (so redelivered commands claim their orders first), every open
``ow-`` order not already tracked here is followed to a terminal state. It is
canceled ``orphan_timeout_s`` after it was placed. Its events carry
``command_id = "orphan:<client_order_id>"`` and the same state-derived event
ids as the placing command's would, so consumers dedupe them.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from schemas import CancelOrder
from schemas.ids import CLIENT_ID_PREFIX
from worker.broker.topology import shard_for
from worker.exchange.models import OrderState
from worker.orders.tracking import order_deadline, track
from worker.ports import Deps

log = logging.getLogger(__name__)


def parse_targets(spec: str) -> list[tuple[str, str]]:
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        account, _, exchange = item.partition(":")
        out.append((account, exchange or "paper"))
    return out


async def _follow(deps: Deps, account: str, exchange_name: str, state: OrderState) -> None:
    cid = state.client_order_id or ""
    ctx = CancelOrder(command_id=f"orphan:{cid}"[:64], account=account, exchange=exchange_name,
                      symbol=state.symbol, target_command_id="unknown",
                      created_at=datetime.now(UTC))
    deps.tracking.add(cid)
    deps.metrics.reconciliations.labels("orphan").inc()
    try:
        exchange = await deps.exchanges.get(account, exchange_name)
        await track(ctx, state, exchange, deps, cid, command_id=ctx.command_id,
                    deadline=order_deadline(state, deps.settings.orphan_timeout_s))
    except Exception:
        log.exception("following orphan order failed", extra={"client_order_id": cid})
    finally:
        deps.tracking.discard(cid)


async def reconcile_open_orders(deps: Deps, preferred_shards: set[int]) -> list[asyncio.Task[None]]:
    """Start following every untracked open ``ow-`` order of this worker's targets."""
    tasks = []
    for account, exchange_name in parse_targets(deps.settings.reconcile_targets):
        if shard_for(account, deps.settings.shards) not in preferred_shards:
            continue
        try:
            exchange = await deps.exchanges.get(account, exchange_name)
            open_orders = await exchange.get_open_orders()
        except Exception as exc:
            log.warning("start-up reconciliation of %s:%s failed: %r", account, exchange_name,
                        exc)
            continue
        for state in open_orders:
            cid = state.client_order_id or ""
            if cid.startswith(CLIENT_ID_PREFIX) and cid not in deps.tracking:
                log.info("adopting orphan order", extra={"client_order_id": cid,
                                                         "account": account})
                tasks.append(asyncio.create_task(_follow(deps, account, exchange_name, state)))
    return tasks
