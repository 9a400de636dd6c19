"""Lab tooling: demo, benchmarks, chaos, exchange simulators, in-memory fakes.

Nothing here runs in production."""
