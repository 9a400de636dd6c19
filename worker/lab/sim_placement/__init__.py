"""Deterministic simulation of the placement protocol (issue 10): the real consumer,
handlers, placement and tracker against a simulated exchange and broker on virtual time.
See ``run`` for the command line, ``check`` for the invariants."""
