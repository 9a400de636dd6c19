"""Chaos-run counts: what the exchange holds against what the event stream says."""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas import CancelOrder, PlaceOrder, client_order_id
from schemas.commands import Command, decode_command
from worker.lab.chaos_events import EventLog
from worker.lab.sim.binance import BinanceSim

if TYPE_CHECKING:
    from worker.lab.chaos import Chaos

def details(commands: list[Command], sim: BinanceSim, log: EventLog,
            open_left: list[str]) -> dict[str, object]:
    """Every failing command by name, with the event kinds seen for it."""
    per_cid = sim.orders_per_client_id()
    by_cid = {client_order_id(c.account, c.command_id): c.command_id
              for c in commands if isinstance(c, PlaceOrder)}
    terminal = log.terminal_commands()
    kinds = {i: sorted(k) for i, k in log.kinds.items()}
    return {
        "cids_not_placed_once": {cid: i for cid, i in by_cid.items() if per_cid.get(cid, 0) != 1},
        "without_terminal": {c.command_id: kinds.get(c.command_id, [])
                             for c in commands if c.command_id not in terminal},
        "open_unfollowed": {cid: by_cid.get(cid, "?") for cid in open_left},
        "lost": {i: kinds.get(i, []) for cid, i in by_cid.items() if per_cid.get(cid)
                 and not ({"order_accepted"} <= set(kinds.get(i, []))
                          and set(kinds.get(i, [])) & {"order_filled", "order_canceled"})},
    }



def _dead_ids(dead: list[tuple[bytes, str]]) -> list[str]:
    out = []
    for body, _ in dead:
        try:
            out.append(decode_command(body).command_id)
        except Exception:
            continue
    return out


def report(chaos: Chaos, commands: list[Command], sim: BinanceSim, log: EventLog,
           dead: list[tuple[bytes, str]], open_left: list[str],
           elapsed_s: float) -> dict[str, object]:
    per_cid = sim.orders_per_client_id()
    cmds = [c for c in commands if isinstance(c, PlaceOrder)]
    cancels = [c for c in commands if isinstance(c, CancelOrder)]
    placed = [c for c in cmds if per_cid.get(client_order_id(c.account, c.command_id))]
    duplicates = [c.command_id for c in cmds
                  if per_cid.get(client_order_id(c.account, c.command_id), 0) > 1]
    no_terminal = [c.command_id for c in commands
                   if c.command_id not in log.terminal_commands()]
    not_found_but_placed = [
        c.command_id for c in cancels
        if log.cancel_not_found.get(c.command_id)
        and per_cid.get(client_order_id(c.account, c.target_command_id))]
    lost = 0
    for c in placed:  # an order on the exchange needs its acceptance and its outcome
        kinds = log.kinds.get(c.command_id, set())
        lost += "order_accepted" not in kinds
        lost += not kinds & {"order_filled", "order_canceled"}
    return {
        "commands": len(cmds), "elapsed_s": round(elapsed_s, 1),
        "orders_on_exchange": sum(per_cid.values()), "commands_placed": len(placed),
        "commands_with_exactly_one_order": sum(
            per_cid.get(client_order_id(c.account, c.command_id)) == 1 for c in placed),
        "commands_with_duplicate_orders": len(duplicates),
        "cancel_commands": len(cancels),
        "commands_without_terminal_event": len(no_terminal),
        "orders_left_open_unfollowed": len(open_left),
        "dead_lettered_without_outcome": sum(
            i not in log.terminal_commands() for i in _dead_ids(dead)),
        "cancels_not_found_for_placed_orders": len(not_found_but_placed),
        "commands_with_two_outcomes": len(log.second_outcomes),
        "events_lost": lost, "events_unique": len(log.seen),
        "duplicate_event_deliveries": log.duplicates,
        "dead_lettered_commands": len(dead),
        "worker_sigkills": chaos.kills, "worker_crash_points": chaos.crashes,
        "broker_restarts": chaos.broker_restarts, "exchange_clock_jumps": chaos.skews,
        "faults_injected": sum(sim.faults.injected.values()),
        "faults_by_kind": dict(sorted(sim.faults.injected.items())),
        "stream_faults_injected": dict(sorted(sim.streams.hub.injected.items())),
        "outcomes": dict(sorted(log.outcomes.items())),
        "examples_without_terminal": [
            f"{i}: {sorted(log.kinds.get(i, set()))}" for i in no_terminal[:5]],
        "examples_open_unfollowed": open_left[:5],
        "examples_duplicated": duplicates[:5],
        "examples_two_outcomes": log.second_outcomes[:5],
        "examples_not_found_but_placed": not_found_but_placed[:5],
    }


def ok(result: dict[str, object]) -> bool:
    """The guarantees. ``cancels_not_found_for_placed_orders`` and
    ``commands_with_two_outcomes`` are reported, not judged: both are open residuals of a
    copy decided on a registry that has not seen every record yet (see the README's known
    limits). Events left unread in the audit queue make the counts incomplete: that fails
    too."""
    return all(result[k] == 0 for k in (
        "commands_with_duplicate_orders", "events_lost", "commands_without_terminal_event",
        "orders_left_open_unfollowed", "dead_lettered_without_outcome")) and (
        result.get("audit_events_unread", 0) == 0)
