"""``python -m callback_worker.ops COMMAND ...``: the operator commands without the rest of ``callback-worker``."""

import sys

from callback_worker.ops.commands import main

sys.exit(main())
