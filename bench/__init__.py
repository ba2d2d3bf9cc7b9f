"""Benchmarks of the portal against the real services: `make bench` (scripts/bench.sh) runs `bench.run`."""
