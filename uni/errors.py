"""Errors the harness reports to a user in one line, before any work starts."""


class ConfigError(ValueError):
    """A setting that cannot work: names the setting and what is allowed."""
