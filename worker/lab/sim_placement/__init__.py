"""Deterministic simulation of the placement protocol (issue 10), FoundationDB style.

The real ``CommandConsumer``, handlers, placement (``place_once`` included) and tracker
run unchanged against ``SimExchange`` and ``SimBroker`` on a ``VirtualLoop``: no real
sleeps, one seed decides everything, so a seed replays exactly. The model:

* exchange: Binance's acceptance rule (timestamp < clock + 1 s, clock - timestamp <=
  recvWindow) and duplicate-id rule (refused only while open); the settle window is
  the one the real Binance driver derives. Requests can wait inside it, answer -1007
  and execute later, lose their response; reads fail, are refused, or lag.
* broker: one shard queue with single-active-consumer; a lost consumer's unacked
  messages come back first, in order, marked redelivered; tracking records come round
  every ``track_cycle_s``; a publish may fail after (or before) storing its messages.
* workers: a crash cancels every task of the worker at its n-th await on a port (before
  or after the request went out); a partition leaves it running until the broker
  notices and redelivers, and its in-flight handlers stop within ``fence_s`` after
  that (the bound issue 10 #2 asks to enforce; ``+unfenced`` drops it).

``check`` states the invariants, ``known`` the defects still open, ``run`` the CLI.
"""
