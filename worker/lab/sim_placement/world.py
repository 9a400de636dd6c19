"""One simulated run: workers running the real consumer, handlers, placement and tracker
against ``SimExchange`` and ``SimBroker`` on a ``VirtualLoop``, faults per ``Schedule``.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import msgspec

from schemas import CancelOrder, Event, PlaceOrder, client_order_id
from schemas.tracking import TrackOrder
from worker.broker.consumer import CommandConsumer
from worker.broker.publisher import RabbitPublisher
from worker.broker.topology import REPUBLISH_HEADER, Names
from worker.exchange.ports import Exchange
from worker.lab.sim_placement.broker import SimBroker, SimChannel, SimPublisher
from worker.lab.sim_placement.exchange import SimExchange, SimOrder
from worker.lab.sim_placement.schedule import Cmd, Schedule
from worker.lab.sim_placement.vclock import EPOCH, VirtualLoop, use, wall_skew
from worker.metrics import Metrics
from worker.orders import follow as _follow  # noqa: F401  (imported lazily by the tracker)
from worker.orders import stream as _stream  # noqa: F401  (imported lazily by follow)
from worker.orders.tracker import Tracker
from worker.ports import Deps
from worker.settings import Settings

ACCOUNT = "acct1"
SYMBOL = "BTC/USDT"
HORIZON_S = 900.0
RECV_WINDOW_S = 5.0
TIMEOUT_S = 2.0
current_worker: contextvars.ContextVar[SimWorker | None] = contextvars.ContextVar(
    "sim_worker", default=None)


class SimWorker:
    """One worker process: its own tracker, sequencer and consumer; tasks it may lose."""

    def __init__(self, world: World, name: str, skew: float) -> None:
        self.world, self.name, self.skew = world, name, skew
        self.tasks: dict[asyncio.Task[Any], None] = {}
        """Insertion-ordered (a set would cancel in address order: not reproducible)."""
        self.dead = self.partitioned = False
        self.calls = 0
        self.channel = SimChannel(world, self)
        pub = SimPublisher(world, self)
        tracker = Tracker(world.settings, world, pub, world.metrics, memory=pub)
        self.deps = Deps(world.settings, world, pub, world.metrics, tracker)
        self.consumer = CommandConsumer(self.deps, cast(RabbitPublisher, pub), world.names)
        self.ctx = contextvars.copy_context()
        self.ctx.run(self._enter)

    def _enter(self) -> None:
        current_worker.set(self)
        wall_skew.set(self.skew)

    @property
    def reachable(self) -> bool:
        return not self.dead and not self.partitioned

    def deliver(self, message: Any) -> None:
        self.ctx.run(self.world.loop.create_task, self.consumer.on_message(message))

    def kill(self) -> None:
        self.dead = True
        self.deps.tracker.closed = True
        for task in list(self.tasks):
            task.cancel()


class World:
    """Everything of one schedule; also the workers' ``ExchangeProvider``."""

    on_create: Callable[[World], None] | None = None
    """Replays hook the log capture in here."""

    def __init__(self, sched: Schedule, settings: Settings, metrics: Metrics,
                 unfenced: bool = False) -> None:
        self.sched, self.settings, self.metrics, self.unfenced = sched, settings, metrics, unfenced
        self.names = Names(prefix="sim", shards=1)
        self.loop = VirtualLoop()
        self.loop.set_task_factory(self._task_factory)  # type: ignore[arg-type]
        self.rng = random.Random(sched.seed * 7919 + 17)
        self.exchange = SimExchange(self, RECV_WINDOW_S, TIMEOUT_S)
        self.broker = SimBroker(self)
        self.workers: list[SimWorker] = []
        self.events: list[tuple[float, str, Event]] = []
        self.dead_letters: list[tuple[str, str]] = []
        self.memo: list[TrackOrder] = []
        """The memo queue (worker.broker.memo): facts, read straight by a new owner."""
        self.trace: list[str] = []
        self.hits: set[str] = set()
        self.finished_at: float | None = None
        if World.on_create is not None:
            World.on_create(self)
        self._cmds = {client_order_id(ACCOUNT, c.command_id): c for c in sched.commands
                      if c.kind == "place"}

    # -- ExchangeProvider ----------------------------------------------------------------
    async def get(self, account: str, exchange: str) -> Exchange:
        return cast(Exchange, self.exchange)

    def is_spot(self, exchange: str) -> bool:
        return True

    # -- plumbing ------------------------------------------------------------------------
    def _task_factory(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any],
                      **kw: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, **kw)
        worker = current_worker.get()
        if worker is not None:
            worker.tasks[task] = None
            task.add_done_callback(lambda t: worker.tasks.pop(t, None))
        return task

    def note(self, text: str) -> None:
        self.trace.append(f"{self.loop.time():9.3f} {text}")

    def hit(self, kind: str) -> None:
        self.hits.add(kind)

    def latency(self) -> float:
        return self.rng.uniform(0.001, 0.05)

    def store(self, worker: SimWorker, events: Sequence[Event],
              records: Sequence[TrackOrder], facts: Sequence[TrackOrder] = ()) -> None:
        now = self.loop.time()
        for e in events:
            self.events.append((now, worker.name, e))
            why = f"{getattr(e, 'reason', '')} {getattr(e, 'message', '')}"[:90]
            self.note(f"{worker.name}: event {type(e).__name__} {e.command_id} "
                      f"{getattr(e, 'exchange_order_id', '') or ''} {why}")
        for rec in records:
            self.broker.put_record(rec)
        self.memo.extend(facts)

    # -- faults ----------------------------------------------------------------------------
    async def port_call(self, op: str) -> int:
        """Every await of a worker on a port passes here: crash or partition points."""
        worker = current_worker.get()
        if worker is None:
            return 0
        if worker.dead:
            raise asyncio.CancelledError
        worker.calls += 1
        n = worker.calls
        s = self.sched
        if any(c.worker == worker.name and c.call == n and not c.after for c in s.crashes):
            self.crash(worker, f"before {op}")
            raise asyncio.CancelledError
        p = s.partition
        if p is not None and p.worker == worker.name and p.call == n and not worker.partitioned:
            self.partition(worker, op)
        return n

    async def port_done(self, n: int) -> None:
        worker = current_worker.get()
        if worker is None or n == 0:
            return
        if any(c.worker == worker.name and c.call == n and c.after for c in self.sched.crashes):
            self.crash(worker, f"after call {n}")
            raise asyncio.CancelledError

    def crash(self, worker: SimWorker, where: str) -> None:
        self.hit("crash")
        self.note(f"{worker.name}: CRASH {where}")
        worker.kill()
        self.loop.call_later(self.rng.uniform(0, 1.0), self.broker.lost, worker)
        self.loop.call_later(self.rng.uniform(1, 5), self.join)

    def partition(self, worker: SimWorker, op: str) -> None:
        p = self.sched.partition
        assert p is not None
        self.hit("partition")
        self.note(f"{worker.name}: PARTITIONED at {op}")
        worker.partitioned = True

        def detected() -> None:
            self.broker.lost(worker)
            self.loop.call_later(p.zombie_s, healed)

        def healed() -> None:
            if worker.dead:  # crashed meanwhile: a fresh worker joined already
                return
            if self.unfenced:  # handlers keep going; the worker reconnects as a standby
                self.note(f"{worker.name}: partition healed, handlers still running")
                worker.partitioned = False
                worker.channel = SimChannel(self, worker)  # a reconnect: a new channel
                self.broker.join(worker)
            else:
                self.note(f"{worker.name}: zombie stopped (fence)")
                worker.kill()
                self.join()

        self.loop.call_later(p.detect_s, detected)

    def create_fault(self) -> str | None:
        s, r = self.sched, self.rng.random()
        for kind, p in (("create_delay", s.p_delay), ("unknown", s.p_unknown),
                        ("lost_response", s.p_lost)):
            if r < p / 3:
                self.hit(kind)
                return {"create_delay": "delay"}.get(kind, kind)
            r -= p / 3
        return None

    def read_fails(self, op: str) -> bool:
        s, now = self.sched, self.loop.time()
        if s.read_outage is not None and s.read_outage[0] <= now < sum(s.read_outage):
            self.hit("read_outage")
            return True
        if s.p_read_fail and self.rng.random() < s.p_read_fail:
            self.hit("read_fail")
            return True
        return False

    def read_refused(self, op: str) -> bool:
        if self.sched.p_read_refused and op in ("find_order", "get_order") \
                and self.rng.random() < self.sched.p_read_refused:
            self.hit("read_refused")
            return True
        return False

    def publish_fails(self) -> bool:
        if self.sched.p_publish_fail and self.rng.random() < self.sched.p_publish_fail:
            self.hit("publish_fail")
            return True
        return False

    def schedule_fills(self, exchange: SimExchange, order: SimOrder) -> None:
        cmd = self._cmds.get(order.req.client_order_id)
        if cmd is None or cmd.fill_after_s is None:
            return
        half = (order.req.amount / 2).quantize(Decimal("0.001"))
        self.loop.call_later(cmd.fill_after_s / 2, exchange.fill, order, half)
        self.loop.call_later(cmd.fill_after_s, exchange.fill, order, order.req.amount)

    # -- the run -------------------------------------------------------------------------
    def join(self) -> None:
        n = len(self.workers) + 1
        worker = SimWorker(self, f"w{n}", self.sched.worker_skews[(n - 1) % 5])
        self.workers.append(worker)
        self.broker.join(worker)

    def _command(self, c: Cmd) -> bytes:
        created = datetime.fromtimestamp(EPOCH + self.loop.time(), UTC)
        cmd: PlaceOrder | CancelOrder
        if c.kind == "place":
            cmd = PlaceOrder(command_id=c.command_id, account=ACCOUNT, exchange="sim",
                             symbol=SYMBOL, side="buy", type=c.order_type,  # type: ignore[arg-type]
                             amount=c.amount, price=c.price,
                             created_at=created, timeout_s=c.timeout_s)
        else:
            assert c.target is not None
            if self.sched.cancel_without_symbol:
                self.hit("no_symbol")
            cmd = CancelOrder(command_id=c.command_id, account=ACCOUNT, exchange="sim",
                              symbol=None if self.sched.cancel_without_symbol else SYMBOL,
                              target_command_id=c.target, created_at=created)
        return msgspec.json.encode(cmd)

    def _publish(self, c: Cmd, copy: int) -> None:
        if copy > 1:
            self.hit("dup_publish")
        if c.kind == "cancel":
            self.hit("cancel")
        self.note(f"strategy: publish {c.command_id} (copy {copy})")
        # a copy is a re-send after an unconfirmed publish, marked as OrderClient marks it
        self.broker.publish(self._command(c), self.names.commands, f"{c.command_id}@{copy}",
                            {REPUBLISH_HEADER: copy} if copy > 1 else None)

    def labels(self) -> list[str]:
        out = []
        for c in self.sched.commands:
            out.append(f"{c.command_id}@1")
            if c.dup_at is not None:
                out.append(f"{c.command_id}@2")
        return out

    def done(self) -> bool:
        if any(label not in self.broker.settled for label in self.labels()):
            return False
        from worker.lab.sim_placement.check import outcomes

        return all(outcomes(self, c) for c in self.sched.commands)

    async def main(self) -> None:
        if self.sched.exch_skew:
            self.hit("exch_skew")
        if any(self.sched.worker_skews):
            self.hit("worker_skew")
        self.join()
        self.join()
        for c in self.sched.commands:
            self.loop.call_later(max(c.at, 0.0), self._publish, c, 1)
            if c.dup_at is not None:
                self.loop.call_later(c.dup_at, self._publish, c, 2)
        while self.loop.time() < HORIZON_S:
            await asyncio.sleep(1.0)
            if self.loop.time() > 3.0 and self.done():
                break
        self.finished_at = self.loop.time()
        for w in self.workers:
            w.kill()
        # requests still on the wire may execute now: let them
        await asyncio.sleep(2 * (RECV_WINDOW_S + 1.5))

    def run(self) -> None:
        use(self.loop)
        try:
            self.loop.run_until_complete(self.main())
            tasks = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for t in tasks:
                t.cancel()
            if tasks:
                self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        finally:
            use(None)
            self.loop.close()
