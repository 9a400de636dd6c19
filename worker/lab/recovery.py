"""Time to recover consumption after a broker fault, read off the durable event stream.

A shard queue *consumes again* after a fault at ``t0`` once a worker has handled a command
of that shard that the broker cannot have delivered before ``t0``: its first event
(``occurred_at``, made by the worker after the delivery) is the proof. Such a command is
either sent after ``t0``, or queued behind more than ``prefetch`` commands of its shard
that were still without any event at ``t0``:

* a shard queue (quorum, single-active-consumer) hands messages to one consumer at a
  time, at most ``prefetch`` unacked; when that consumer goes away (its channel closed,
  or its node lost: RabbitMQ then marks it *suspected down* and moves it to the waiting
  consumers) its unacked messages return to the queue before the next one is activated.
  A worker makes a command's first event before it acks the message, so every command
  delivered but without an event at ``t0`` is among the at most ``prefetch`` messages
  the active consumer held;
* the queue delivers in order (returned messages first), so those are the *first*
  commands of the shard without an event at ``t0``, in the order they were sent (one
  sender, each send confirmed before the next).

Events of the commands a worker held at ``t0`` do not count: they can come from a worker
whose channel never noticed the fault. The recovery time of a fault is the slowest
shard's. It includes whatever consuming again involves: reconnecting to another node, a
quorum-queue leader election, single-active-consumer handing the shard to a live
consumer, and the settle and fence waits of redelivered commands (worker.orders.place)
that hold the prefetch window before fresh commands are delivered. It does not include
working off the backlog that built up meanwhile: that is what a probe order sent right
after the fault measures (worker.lab.chaos_cluster).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Sent:
    command_id: str
    shard: int
    at: float
    """When its send began (epoch seconds, the clock the workers stamp events with)."""


def shard_recovery(t0: float, sent: Iterable[Sent], first_at: Mapping[str, float],
                   shards: int, prefetch: int) -> dict[int, float | None]:
    """Per shard: seconds from ``t0`` until the first event of a command that cannot have
    been delivered before ``t0`` (None: no such event seen)."""
    by_shard: dict[int, list[Sent]] = {k: [] for k in range(shards)}
    for s in sent:
        by_shard.setdefault(s.shard, []).append(s)
    out: dict[int, float | None] = {}
    for shard, cmds in sorted(by_shard.items()):
        cmds.sort(key=lambda s: s.at)
        waiting = [s.command_id for s in cmds
                   if s.at < t0 and first_at.get(s.command_id, float("inf")) > t0]
        fresh = waiting[prefetch:] + [s.command_id for s in cmds if s.at >= t0]
        times = [first_at[c] for c in fresh if c in first_at]
        out[shard] = round(min(times) - t0, 1) if times else None
    return out


def recovery(t0: float, sent: Iterable[Sent], first_at: Mapping[str, float], shards: int,
             prefetch: int) -> tuple[float | None, int | None]:
    """(seconds until every shard consumed again, the slowest shard); (None, shard) if a
    shard shows no proof."""
    per = shard_recovery(t0, sent, first_at, shards, prefetch)
    for shard, value in per.items():
        if value is None:
            return None, shard
    if not per:
        return None, None
    shard = max(per, key=lambda k: per[k] or 0.0)
    return per[shard], shard
