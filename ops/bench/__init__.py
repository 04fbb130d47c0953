"""Benchmarks: scripts that publish synthetic traffic and print figures."""
