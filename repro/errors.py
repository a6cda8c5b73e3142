"""Errors that stop a run before compute is spent, each saying what is wrong and how to fix it."""


class ConfigError(ValueError):
    """A config value is invalid: the message names the key, the value and the fix."""


class DataError(RuntimeError):
    """A data file is missing, unreadable or corrupt: the message names the file and the fix."""
