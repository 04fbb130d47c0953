"""`python -m ops.bench.credit`: the credit benchmark, as `tongcheng bench credit` (ops/bench/run.py).

.venv/bin/python -m ops.bench.credit [--quick] [--records N] [--subjects N] [--rate R] [--seconds S]
    [--signatures on|off] [--store memory|rocksdb] [--restarts]
"""

from __future__ import annotations

import argparse
import sys

from ops.bench.run import run
from topics.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.credit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--records", type=int, help="backlog size for the throughput run")
    parser.add_argument("--subjects", type=int)
    parser.add_argument("--rate", type=float, help="records/s for the latency run")
    parser.add_argument("--seconds", type=float, help="duration of the latency run")
    parser.add_argument("--signatures", choices=["on", "off"], default="on")
    parser.add_argument("--store", choices=["memory", "rocksdb"], default="memory")
    parser.add_argument("--restarts", action="store_true", help="restart figures instead of the latency run")
    args = parser.parse_args(argv)
    args.processor = "credit"
    return run(Settings.from_env(), args)


if __name__ == "__main__":
    sys.exit(main())
