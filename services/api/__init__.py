"""The HTTP API, version 1 (DESIGN.md section 6)."""
