"""A testing kit for handler authors: a ``callback_context`` factory and an in-memory harness that runs a handler
through the worker's real dispatcher, loaded by pytest through the ``pytest11`` entry point
(:mod:`callback_worker.testing.plugin`). Part of the face: it imports the worker; the worker never imports it."""
