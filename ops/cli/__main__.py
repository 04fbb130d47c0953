"""`python -m ops.cli`: the `tongcheng` command."""

import sys

from ops.cli import main

sys.exit(main())
