"""Graceful stops: SLURM sends SIGTERM (or, as configured, SIGUSR1 / submitit's SIGUSR2) before
it kills or requeues a job. The handler only records the signal; the trainer finishes its step,
writes a checkpoint and stops; then `forward` hands the signal to whatever handled it before
(submitit's handler requeues the job), and relaunching the run directory resumes. Every rank
stops at the same step: one rank's signal stops them all."""
from __future__ import annotations

import signal
import threading
import warnings


class StopOnSignals:
    """Context manager; calling it returns the name of the first signal received, or None."""

    def __init__(self, names):
        self.names = list(names)
        self.received: str | None = None
        self.previous: dict = {}

    def __call__(self) -> str | None:
        return self.received

    def handle(self, signum, frame) -> None:
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
        """Call the previous Python handler of the received signal (e.g. submitit's requeue)."""
        handler = self.previous.get(getattr(signal, self.received or "", None))
        if callable(handler):
            handler(getattr(signal, self.received), None)


def agreed_stop(requested, world, device) -> str | None:
    """Why to stop now (`requested()`: e.g. a StopOnSignals), agreed by all ranks of `world`."""
    reason = requested()
    if world.any(bool(reason), device):
        return reason or "a stop request on another rank"
    return None


class Interrupted(Exception):
    """Training stopped early on request (e.g. SIGTERM) after writing a checkpoint."""
