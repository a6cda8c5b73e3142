"""A run's directory: `RunDir` names its files, reads its status markers and writes its records
safely; training, batched runs, sweeps, collection and plotting all go through it. It also makes a
command-line launch's directory: rank 0 alone (Hydra would on every rank, before any check), a
folder that cannot be made is a one-line error, and a refused launch's new folders are removed."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import socket
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import read_write

from repro import distributed, paths
from repro.errors import BusyError, ConfigError, DataError, refuse
from repro.records.atomic import write_atomic
from repro.records.logger import MESSAGES

CREATED: list[Path] = []     # the folders this launch created for its run directory, outermost first


class RunDir:
    """One run's directory. Its files: config.yaml (the resolved config), provenance.json,
    metrics.jsonl (every event: the source of truth), checkpoint.pt (+ .prev), snapshots/,
    plot.png, train.log, summary.json; markers: .lock (a live run's lock: pid and host) and COMPLETE
    (the summary, the config's hash and metrics.jsonl's checksum, written last)."""
    STALE = ("COMPLETE", "summary.json", "checkpoint.pt", "checkpoint.prev.pt", ".run_id")

    def __init__(self, path):
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __fspath__(self) -> str:          # wherever a path is taken, a RunDir is one
        return str(self.path)

    __str__ = __fspath__

    config = property(lambda self: self.path / "config.yaml")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    checkpoint = property(lambda self: self.path / "checkpoint.pt")
    snapshots = property(lambda self: self.path / "snapshots")
    marker = property(lambda self: self.path / "COMPLETE")
    lock = property(lambda self: self.path / ".lock")

    def status(self) -> str:
        """complete (marker verified), tampered (metrics changed after), running (a live process
        holds its lock on this host), or incomplete (crashed, stopped, or running elsewhere)."""
        if self.marker.is_file():
            return "complete" if self.intact(self.read_json("COMPLETE")) else "tampered"
        owner = self.holder()
        if owner and owner["host"] == socket.gethostname() and pid_alive(owner["pid"]):
            return "running"
        return "incomplete"

    def finished(self, config_hash: str) -> dict | None:
        """The summary of a run completed here with a config of this hash (its marker verified)."""
        if not self.marker.is_file():
            return None
        done = self.read_json("COMPLETE")
        if done["config_hash"] != config_hash:
            raise ConfigError(f"{self} holds a finished run of a different config; use another hydra.run.dir")
        if not self.intact(done):
            raise DataError(f"{self.metrics} changed after the run finished (checksum in COMPLETE "
                            "differs): restore it, or delete the directory to run again")
        return done["summary"]

    def intact(self, done: dict) -> bool:
        """metrics.jsonl is what the COMPLETE marker `done` recorded."""
        return self.metrics_sha256() == done["metrics_sha256"]

    def open(self, files: dict[str, str], fresh: bool) -> None:
        """Make the accepted run's directory and write `files` (name -> text: its config, the
        launcher's record); a `fresh` start first drops an old run's marker, checkpoints, W&B id."""
        make(self.path)
        warn_if_committed(self.path)
        for name in self.STALE if fresh else ():
            (self / name).unlink(missing_ok=True)
        for name, text in files.items():
            (self / name).parent.mkdir(exist_ok=True)
            (self / name).write_text(text)

    def complete(self, summary: dict, config_hash: str) -> None:
        """Write summary.json, then the COMPLETE marker that makes the run count as finished."""
        self.write_json("summary.json", summary)
        self.write_json("COMPLETE", {"summary": summary, "config_hash": config_hash,
                                     "metrics_sha256": self.metrics_sha256()})

    @contextmanager
    def live(self):
        """This launch's exclusive hold on the directory, from before it writes there until it ends,
        however it ends; .lock records the holder (pid, host) for status(). flock(2) on .lock, kept
        open, not O_CREAT|O_EXCL: the kernel drops it when its process dies (kill -9 too), so a stale
        lock is one nobody holds, taken over with no racy pid test. A record of a live pid on this
        host (a launch without flock) or of another host (its pid cannot be checked; not every shared
        file system passes flock between hosts) is refused. Folders made for it go if left empty."""
        created, fd = make(self.path), None
        try:
            fd = self.hold()
            yield self
        finally:
            if fd is not None:
                if same_file(fd, self.lock):      # unlinked before it is unlocked: see flock()
                    self.lock.unlink()
                os.close(fd)
            remove_empty(created)

    def hold(self) -> int:
        """Lock .lock and record this process there (see live); the locked descriptor."""
        mine = {"pid": os.getpid(), "host": socket.gethostname()}
        fd = flock(self.lock)
        owner = self.holder(wait=0.0 if fd is not None else 2.0)   # the holder locks, then writes
        other = owner not in (None, mine)
        alive = fd is None or other and owner["host"] == mine["host"] and pid_alive(owner["pid"])
        if alive or other and owner["host"] != mine["host"]:
            if fd is not None:
                os.close(fd)
            who = f"pid {owner['pid']} on host {owner['host']}" if owner else "a launch starting now"
            fix = "wait for it to end, or choose another run directory" if alive else (
                f"it cannot be checked from host {mine['host']}: if that run has ended, delete "
                f"{self.lock} and relaunch, or else choose another run directory")
            raise BusyError(f"{self} is held by another run ({who}); {fix}")
        if other:
            MESSAGES.warning(f"{self}: taking over the lock of pid {owner['pid']}, which has ended")
        os.ftruncate(fd, os.pwrite(fd, json.dumps(mine).encode(), 0))    # over the old record
        return fd

    def holder(self, wait: float = 0.0) -> dict | None:
        """The pid and host that .lock records; None if there is none (or it is being written),
        after up to `wait` seconds for a launch that holds the lock to write its record."""
        deadline = time.monotonic() + wait
        while True:
            try:
                owner = json.loads(self.lock.read_text())
                return {"pid": int(owner["pid"]), "host": str(owner["host"])}
            except (OSError, ValueError, TypeError, KeyError):
                if time.monotonic() >= deadline:
                    return None
                time.sleep(0.05)

    def run_id(self) -> str:
        """A random id kept here, so a resumed run continues the same W&B run."""
        path = self / ".run_id"
        if not path.is_file():
            path.write_text(secrets.token_hex(6))
        return path.read_text().strip()

    def events(self) -> list[dict]:
        with open(self.metrics) as f:
            return [json.loads(line) for line in f if line.strip()]

    def metrics_sha256(self) -> str:
        return hashlib.sha256(self.metrics.read_bytes()).hexdigest()

    def read_json(self, name: str):
        return json.loads((self / name).read_text())

    def write_json(self, name: str, obj) -> None:
        write_atomic(self / name, json.dumps(obj, indent=2, default=str))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as err:          # PermissionError: alive, another user's
        return not isinstance(err, ProcessLookupError)
    return True


def flock(path: Path) -> int | None:
    """A descriptor of `path` (created if missing) locked exclusively, or None if another holds
    it. A holder unlinks `path` before it unlocks, so a lock won on an unlinked file is retried."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if isinstance(err, BlockingIOError):
                return None
            raise ConfigError(f"{path} cannot be locked ({err.strerror}); choose a run directory on "
                              "a file system with locks") from None
        if same_file(fd, path):
            return fd
        os.close(fd)


def same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def make(path: Path) -> list[Path]:
    """Create `path` and its missing parents; return those it created, outermost first."""
    missing = [p for p in (path, *path.parents) if not p.exists()][::-1]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"hydra.run.dir={path} cannot be created ({err.strerror}); choose a folder "
                          "you can write to") from None
    if not os.access(path, os.W_OK | os.X_OK):      # an existing folder, read-only (or its file system)
        raise ConfigError(f"hydra.run.dir={path} is not writable; choose a folder you can write to")
    return missing


def remove_created() -> None:
    """Remove the folders this launch created if they are still empty (its run was refused)."""
    remove_empty(CREATED)
    CREATED.clear()


def remove_empty(folders: list[Path]) -> None:
    """Remove `folders` (outermost first), innermost first, while they are empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:          # it holds the run's files: keep it and its parents
            break


def warn_if_committed(run_dir: Path) -> None:
    """Warn about a run put in the repository's results/, which holds the committed tables."""
    if run_dir.resolve().is_relative_to(paths.RESULTS):
        warnings.warn(f"{run_dir} lies in results/, which git tracks: its files (but checkpoints, snapshots, "
                      "wandb/) become changes to commit. Use outputs/ or runs/ unless it is to be committed")


class MakeRunDir(Callback):
    """Before Hydra makes `hydra.run.dir` (single runs): rank 0 makes it, other ranks point Hydra
    at the working directory, which exists; multirun folders stay Hydra's."""

    def on_run_start(self, config, **kwargs) -> None:
        if distributed.launch_rank():
            with read_write(config.hydra.run):
                config.hydra.run.dir = os.getcwd()
            return
        try:
            CREATED[:] = make(Path(config.hydra.run.dir))
        except ConfigError as err:
            refuse(err)
