"""Local exchange simulators for tests, chaos runs and benchmarks."""
