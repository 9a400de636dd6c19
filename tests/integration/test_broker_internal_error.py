"""A broker that cannot declare the worker's queues (RabbitMQ 3.10 after its dead-lettering
supervisor died) stops the worker with a message naming the fix, not "unreachable"."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.conftest import local_node
from tests.integration.harness import harness
from worker.broker.contract import TopologyError
from worker.lab.chaos import heal_dead_letter_supervisor


async def _eval(expr: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "-q", "eval", expr, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    assert await proc.wait() == 0


@pytest.mark.restarts_broker  # it breaks its broker for a moment: the throwaway node
async def test_a_dead_dead_letter_supervisor_stops_the_worker_naming_the_fix(
        amqp_url: str) -> None:
    if not local_node(amqp_url):
        pytest.skip("needs a local node and rabbitmqctl")
    await _eval("supervisor:terminate_child(rabbit_sup, rabbit_fifo_dlx_sup).")
    try:
        async with harness(amqp_url) as h:
            with pytest.raises(TopologyError, match="Restart the node"):
                await h.start_worker()
            assert await heal_dead_letter_supervisor()
        async with harness(amqp_url) as h:
            await h.start_worker()  # healed: queues declared from now on work
    finally:
        await heal_dead_letter_supervisor()
