"""Writes that readers never see half done: the new content goes to a file beside the target,
which then replaces it in one rename (atomic on POSIX). The one place the project does this, for
run records, checkpoints and data caches alike."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: Path, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; when the block ends cleanly it replaces
    `path`. `durable`: fsync the file and the folder too, so the write also survives a power cut.
    A block that raises leaves `path` as it was and no temporary file behind."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        if durable:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if durable:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def write_atomic(path: Path, data: str | bytes, durable: bool = False) -> None:
    """Replace `path` by `data` (text as UTF-8) in one step."""
    with replacing(path, durable) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
