"""Tongcheng's processors, HTTP API and command line."""
