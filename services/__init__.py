"""Tongcheng's processors and HTTP API (the command line is `ops/cli/`); the processors are declared
in services/registry.py."""
