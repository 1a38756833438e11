"""Settings of the callback worker."""
