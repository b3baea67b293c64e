"""Benchmarks of the HMS Management Layer: `make bench`."""
