"""Errors that stop a run before compute is spent, each saying what is wrong and how to fix it."""
from __future__ import annotations

import sys
from typing import NoReturn


class ConfigError(ValueError):
    """A config value is invalid: the message names the key, the value and the fix."""


class DataError(RuntimeError):
    """A data file is missing, unreadable or corrupt: the message names the file and the fix."""


class BusyError(RuntimeError):
    """The run directory is held by another run: the message names its holder and what to do."""


def refuse(err: Exception) -> NoReturn:
    """End the command with its one-line message on stderr and exit status 2 (no traceback)."""
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)
