"""The chaos-cluster's 'time to recover consumption' (worker.lab.recovery)."""

from __future__ import annotations

from worker.lab.recovery import Sent, recovery, shard_recovery

T0 = 1000.0


def test_only_commands_that_cannot_have_been_delivered_before_the_fault_count() -> None:
    sent = [Sent(f"a{i}", 0, T0 - 50 + i) for i in range(40)]  # all sent before the fault
    first_at = {f"a{i}": T0 - 1 for i in range(5)}  # five handled before it
    first_at["a5"] = T0 + 1.0  # among the first prefetch waiting: may have been held
    first_at["a8"] = T0 + 2.0  # still among them (a5..a8 are the first 4)
    first_at["a9"] = T0 + 3.0  # the 5th waiting one: delivered after the fault
    sent.append(Sent("b0", 1, T0 + 0.5))  # shard 1: sent after the fault
    first_at["b0"] = T0 + 2.0
    assert shard_recovery(T0, sent, first_at, shards=2, prefetch=4) == {0: 3.0, 1: 2.0}
    assert recovery(T0, sent, first_at, shards=2, prefetch=4) == (3.0, 0)


def test_a_shard_without_proof_is_not_recovered() -> None:
    sent = [Sent("a0", 0, T0 - 1), Sent("b0", 1, T0 + 1)]
    first_at = {"a0": T0 + 5, "b0": T0 + 2}  # a0 may have been held at the fault
    assert recovery(T0, sent, first_at, shards=2, prefetch=1) == (None, 0)
