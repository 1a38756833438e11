"""The one error the settings layer raises.

``config`` sits below the daemon and imports nothing from it; the daemon's :class:`worker.errors.ConfigurationError`
derives from :class:`SettingsError`, so the command line catches one type and prints the exit-2 line for both.
"""

from __future__ import annotations


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the environment variable."""
