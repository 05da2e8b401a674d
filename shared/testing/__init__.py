"""Helpers shared by the tests, the demo and the benchmarks (no test framework imports here)."""
