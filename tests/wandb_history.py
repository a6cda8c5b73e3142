"""The history rows of W&B's offline run files (`offline-run-*/run-<id>.wandb`), read back.

wandb 0.31 ships no Python reader (its writer is the Go wandb-core), so the tests carry this
one: the file is a 7-byte header (":W&B", magic 0xBEE1, version) then the LevelDB log format,
32 KiB blocks of chunks with a 7-byte header (CRC-32 of type and data, length, type: full,
first, middle, last), holding wandb's protobuf Records. Checksums are verified.
"""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK, HEADER = 32768, 7
FULL, LAST = 1, 4


def records(path: Path):
    raw = Path(path).read_bytes()
    assert raw[:4] == b":W&B" and struct.unpack("<H", raw[4:6])[0] == 0xBEE1, f"{path}: not a W&B file"
    pos, data = HEADER, b""
    while len(raw) - pos >= HEADER:
        if BLOCK - pos % BLOCK < HEADER:          # too little room for a header: the block's padding
            pos += BLOCK - pos % BLOCK
            continue
        crc, length, kind = struct.unpack("<IHB", raw[pos:pos + HEADER])
        chunk = raw[pos + HEADER:pos + HEADER + length]
        if kind == 0 or len(chunk) < length:      # zero fill, or a write cut short
            return
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == crc, f"{path}: bad checksum at {pos}"
        pos += HEADER + length
        data += chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(data)
            data = b""
            yield record


def history(path: Path) -> list[dict]:
    """One dict per history row: its logged keys (with W&B's `_step`, `_runtime`, ...)."""
    return [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
            for r in records(path) if r.WhichOneof("record_type") == "history"]
