"""Issue 10, item 11: a command from the future gets one OrderRejected(invalid), is
acked, and never loops through retries or the dead-letter queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas import RejectReason
from tests.conftest import place
from tests.unit.test_handlers import make
from worker.orders.handlers import handle
from worker.ports import Delivery


@pytest.mark.parametrize("ahead", [timedelta(seconds=30), timedelta(days=3650)])
async def test_future_created_at_is_rejected_once_with_a_clear_reason(
        ahead: timedelta, caplog: pytest.LogCaptureFixture) -> None:
    deps, pub, paper = make()
    outcome = await handle(place(created_at=datetime.now(UTC) + ahead), deps, Delivery())
    assert outcome.action == "ack"
    assert pub.kinds() == ["OrderRejected"] and paper.created == 0
    rejected = pub.events[0]
    assert rejected.reason == RejectReason.INVALID  # type: ignore[union-attr]
    assert "in the future" in rejected.message and "clock" in rejected.message  # type: ignore[union-attr]
    assert not [r for r in caplog.records if r.exc_info]  # no traceback
    await deps.tracker.close()


async def test_small_clock_skew_is_tolerated() -> None:
    deps, pub, paper = make(OW_MAX_CLOCK_SKEW_S="5")
    await handle(place(created_at=datetime.now(UTC) + timedelta(seconds=2)), deps, Delivery())
    assert pub.kinds()[0] == "OrderAccepted" and paper.created == 1
    await deps.tracker.close()
