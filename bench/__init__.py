"""Benchmarks: they print figures and write JSON under bench/results/ (not timed tests)."""
