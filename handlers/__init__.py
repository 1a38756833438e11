"""Built-in callback handlers, registered through the ``callback_worker.handlers`` entry-point group."""
