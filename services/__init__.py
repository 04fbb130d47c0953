"""Tongcheng's processors and HTTP API (the command line is `ops/cli/`)."""

#: the processors, each in services/<name>/app.py (`tongcheng worker <name>`)
WORKERS = ("credit", "sanctions", "emergency", "supervision", "readmodel")
