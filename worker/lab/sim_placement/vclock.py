"""Virtual time for the placement simulation: an event loop whose clock jumps to the next
timer when nothing is ready, and wall/monotonic clock reads that follow it.

The worker reads time through ``time.time()``, ``time.monotonic()`` and
``datetime.now()``. ``virtual_clocks()`` swaps the ``time`` and ``datetime`` globals of
every loaded ``worker``, ``schemas`` and ``tenacity`` module for shims driven by the
running ``VirtualLoop`` (restored on exit), so the real code runs unchanged. A task's
wall clock is the virtual time plus the skew of the simulated process it belongs to
(a context variable, inherited by the tasks it creates).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sys
import time as _time
from collections.abc import Iterator
from datetime import datetime as _datetime
from datetime import tzinfo
from types import ModuleType
from typing import Any

EPOCH = 1_780_000_000.0
"""Virtual wall-clock seconds at loop time 0."""
wall_skew: contextvars.ContextVar[float] = contextvars.ContextVar("sim_wall_skew", default=0.0)
_loop: VirtualLoop | None = None


class SimStuck(RuntimeError):
    """Nothing is ready and no timer is due: the simulated system can never move again."""


class _Selector:
    """Stands in for the I/O selector: "waiting" for ``timeout`` advances the clock."""

    def __init__(self, loop: VirtualLoop) -> None:
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None:
            raise SimStuck("no task is ready and no timer is scheduled")
        if timeout > 0:
            self._loop.now += timeout
        return []

    def close(self) -> None:
        return None


class VirtualLoop(asyncio.BaseEventLoop):
    """An event loop without I/O whose time() is virtual (starts at 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self._selector = _Selector(self)
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self.now

    def _process_events(self, event_list: Any) -> None:
        return None

    def _write_to_self(self) -> None:
        return None


def _wall() -> float:
    return EPOCH + (_loop.now if _loop is not None else 0.0) + wall_skew.get()


class _TimeShim(ModuleType):
    """The ``time`` module with virtual ``time``/``monotonic`` (and ``_ns``) functions."""

    def __init__(self) -> None:
        super().__init__("time")

    @staticmethod
    def time() -> float:
        return _wall()

    @staticmethod
    def time_ns() -> int:
        return int(_wall() * 1e9)

    @staticmethod
    def monotonic() -> float:
        return _loop.now if _loop is not None else 0.0

    @staticmethod
    def monotonic_ns() -> int:
        return int((_loop.now if _loop is not None else 0.0) * 1e9)

    def __getattr__(self, name: str) -> Any:
        return getattr(_time, name)


class _SimDatetime(_datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _datetime:  # type: ignore[override]
        return _datetime.fromtimestamp(_wall(), tz)

    @classmethod
    def utcnow(cls) -> _datetime:  # type: ignore[override]
        return _datetime.utcfromtimestamp(_wall())


TIME_SHIM = _TimeShim()
_PATCHED_PREFIXES = ("worker", "schemas", "tenacity")


def _targets() -> list[tuple[ModuleType, str, object]]:
    out: list[tuple[ModuleType, str, object]] = []
    for name, mod in list(sys.modules.items()):
        if mod is None or not name.startswith(_PATCHED_PREFIXES):
            continue
        if name.startswith("worker.lab.sim_placement"):
            continue
        for attr, value in list(vars(mod).items()):
            if value is _time:
                out.append((mod, attr, TIME_SHIM))
            elif value is _datetime:
                out.append((mod, attr, _SimDatetime))
            elif value is _time.time:
                out.append((mod, attr, TIME_SHIM.time))
            elif value is _time.monotonic:
                out.append((mod, attr, TIME_SHIM.monotonic))
    return out


@contextlib.contextmanager
def virtual_clocks() -> Iterator[None]:
    """Point the worker's clock reads at the running VirtualLoop (see ``use``)."""
    targets = _targets()
    saved = [(mod, attr, getattr(mod, attr)) for mod, attr, _ in targets]
    for mod, attr, shim in targets:
        setattr(mod, attr, shim)
    try:
        yield
        late = sorted({mod.__name__ for mod, _, _ in _targets()})
        if late:  # imported while simulating: their clock reads were real
            raise RuntimeError(f"modules imported during the simulation read the real "
                               f"clock: {', '.join(late)}; import them before it starts")
    finally:
        for mod, attr, value in saved:
            setattr(mod, attr, value)


def use(loop: VirtualLoop | None) -> None:
    """Make ``loop`` the clock the shims read."""
    global _loop
    _loop = loop
