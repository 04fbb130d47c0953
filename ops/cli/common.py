"""What every `tongcheng` command group uses: its output and the type of the subcommand table."""

from __future__ import annotations

import argparse
import sys
from typing import TypeAlias

#: the table of subcommands each command group adds its commands to (`add_<command>(sub)`)
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def say(message: str) -> None:
    print(message, flush=True)


def err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
