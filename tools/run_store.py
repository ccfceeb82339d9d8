"""A JSONL file of finished runs that survives interruption: one JSON object per line.

* Append: each record is one ``write`` of one line to a file opened with ``O_APPEND``, then
  ``fsync``, so a run is on disk before the sweep moves on; a crash can at worst leave the last
  line torn (no newline at its end).
* Read: every complete line must be a JSON object (else one-line error naming the line); a torn
  last line is not a run and is reported, and :meth:`RunStore.lock` cuts it off before the first
  new append, so the file stays one record per line.
* Lock: a sweep holds an exclusive ``flock`` on the file for its whole duration, so two sweeps
  cannot both run (and append) the same runs; reading needs no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

from aquant_sim.errors import ConfigError, InputError


class RunStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> tuple[list[dict], bytes]:
        """The records in file order, and the torn last line (``b""`` if none)."""
        if not self.path.exists():
            return [], b""
        *lines, torn = self.path.read_bytes().split(b"\n")
        records = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"{self.path}:{number}: not a JSON record ({error.msg})") from None
            if not isinstance(record, dict):
                raise InputError(f"{self.path}:{number}: a record must be a JSON object, got {type(record).__name__}")
            records.append(record)
        return records, torn

    @contextlib.contextmanager
    def lock(self):
        """Hold the file exclusively (one sweep at a time); cut off a torn last line first."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError(f"{self.path}: another sweep is writing this file (it is locked)") from None
            _, torn = self.read()
            if torn:
                print(f"{self.path}: dropping a torn last line of {len(torn)} bytes (a run interrupted while it was written)")
                os.truncate(self.path, self.path.stat().st_size - len(torn))
            try:
                yield self
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def append(self, record: dict) -> None:
        """Write one record as one line and make it durable before returning."""
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"{self.path}: wrote {written} of {len(line)} bytes of a record")
            os.fsync(fd)
        finally:
            os.close(fd)
