"""Tongcheng's processors and HTTP API (the command line is `ops/cli.py`)."""

#: the processors, each in services/<name>/app.py (`tongcheng worker <name>`)
WORKERS = ("credit", "sanctions", "emergency", "supervision", "readmodel")
