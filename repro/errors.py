"""Errors that end a command with one line and a documented exit status, no traceback: refusals
before compute is spent (exit status 2), each saying what is wrong and how to fix it, and faults
that stop a run once compute was spent (RunError, exit status 1), saying what is kept and what to
do. A run stopped on request (SIGTERM, Ctrl-C) is no error: repro.preemption."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import NoReturn


class ConfigError(ValueError):
    """A config value is invalid: the message names the key, the value and the fix."""


class DataError(RuntimeError):
    """A data file is missing, unreadable or corrupt: the message names the file and the fix."""


class BusyError(RuntimeError):
    """The run directory is held by another run: the message names its holder and what to do."""


class RunError(RuntimeError):
    """Training stopped on a fault after compute was spent (a non-finite loss, a checkpoint that
    cannot be written): the message says what is kept and how to go on."""


REFUSALS = (ConfigError, DataError, BusyError)


def flat(err: Exception) -> str:
    """`err`'s message on one line: Hydra's span several (its options one per line, its search
    path, the cause's details)."""
    text = str(err).split("\nConfig search path:")[0]
    if err.__cause__ is not None and type(err).__module__.startswith("hydra"):
        text += f": {str(err.__cause__).splitlines()[0]}"
    lines = [line.strip() for line in text.splitlines() if line.strip()] or [""]
    out = lines[0]
    for line in lines[1:]:
        out += (" " if out.endswith(":") else "; ") + line
    return out


def refuse(err: Exception, status: int | None = None) -> NoReturn:
    """End the command with its one-line message on stderr and exit status 2 for a refusal, 1 for
    a RunError (or `status`), no traceback."""
    print(f"error: {flat(err)}", file=sys.stderr)
    sys.exit(status if status is not None else 1 if isinstance(err, RunError) else 2)


@contextmanager
def one_line(*refusals: type[Exception]):
    """A command's body: a refusal (or one of `refusals`, e.g. Hydra's errors), a RunError or Ctrl-C
    before a run can stop cleanly (twice, or before training began) ends it with one line."""
    try:
        yield
    except (*REFUSALS, *refusals, RunError) as err:
        refuse(err)
    except KeyboardInterrupt:
        refuse(RunError("interrupted: stopped at once; relaunch the same command to resume from the "
                        "last checkpoint, if one was written"), 130)
