"""``python -m worker.ops COMMAND ...``: the operator commands without the rest of ``callback-worker``."""

import sys

from worker.ops.commands import main

sys.exit(main())
