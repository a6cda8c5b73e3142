"""Graceful stops: SLURM sends SIGTERM (or, as configured, SIGUSR1 / submitit's SIGUSR2) before
it kills or requeues a job, and a user presses Ctrl-C (SIGINT, always handled). The handler only
records the signal; the trainer finishes its step, writes a checkpoint and stops with one line;
then `forward` hands the signal to whatever handled it before (submitit's handler requeues the
job), and relaunching the run directory resumes. A second Ctrl-C stops at once (KeyboardInterrupt),
resumable from the last checkpoint. Every rank stops at the same step: one rank's signal stops
them all. DataLoader workers ignore Ctrl-C (`quiet_worker`): it reaches the whole process group,
and the workers must live on until the step is done."""
from __future__ import annotations

import signal
import threading
import warnings

# A launch stopped on a signal exits 0 (a preempted job did what it was asked: requeue it, or
# relaunch), but after Ctrl-C with 128 + SIGINT, as a shell expects of an interrupted command.
EXIT_STATUS = {"SIGINT": 128 + signal.SIGINT}


class StopOnSignals:
    """Context manager; calling it returns the name of the first signal received, or None."""

    def __init__(self, names):
        self.names = list(dict.fromkeys([*names, "SIGINT"]))
        self.received: str | None = None
        self.previous: dict = {}

    def __call__(self) -> str | None:
        return self.received

    def handle(self, signum, frame) -> None:
        if self.received == "SIGINT" and signum == signal.SIGINT:
            raise KeyboardInterrupt           # Ctrl-C twice: stop now, without a checkpoint
        self.received = self.received or signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            warnings.warn("not in the main thread: preemption signals are not handled")
            return self
        for name in self.names:
            sig = getattr(signal, name, None)
            if sig is None:
                raise ValueError(f"train.stop_signals has {name!r}, which is no signal here")
            self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False

    def forward(self) -> None:
        """Call the previous Python handler of the received signal (e.g. submitit's requeue); not
        Python's own SIGINT handler, which would raise KeyboardInterrupt."""
        handler = self.previous.get(getattr(signal, self.received or "", None))
        if callable(handler) and handler is not signal.default_int_handler:
            handler(getattr(signal, self.received), None)


def quiet_worker(_worker_id: int = 0) -> None:
    """A DataLoader worker's `worker_init_fn`: ignore Ctrl-C, which the main process handles (the
    worker ends when its loader is done, or its parent gone). SIGTERM stays: it is how
    multiprocessing ends leftover workers when the main process exits."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def agreed_stop(requested, world, device) -> str | None:
    """Why to stop now (`requested()`: e.g. a StopOnSignals), agreed by all ranks of `world`."""
    reason = requested()
    if world.any(bool(reason), device):
        return reason or "a stop request on another rank"
    return None


class Interrupted(Exception):
    """Training stopped early on request (e.g. SIGTERM) after writing a checkpoint; `reason`: the
    signal's name."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS.get(self.reason, 0)
