"""``python -m callback_worker``: the same as the ``callback-worker`` console script."""

from callback_worker.cli import main

raise SystemExit(main())
