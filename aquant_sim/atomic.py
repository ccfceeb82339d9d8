"""The one atomic file writer: a file is either its old content or its complete new content,
never a partial write, even if the process dies midway."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator


@contextlib.contextmanager
def atomic_write(path) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for binary writing; on a clean exit flush it to
    disk (fsync) and rename it over ``path`` (atomic on POSIX within one folder); on any
    exception delete it and leave ``path`` as it was. Creates the parent folder (an OSError
    naming ``path`` when it cannot)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        # mkdir's message names the folder; the caller needs the file it asked for.
        raise OSError(error.errno, f"cannot create the folder of {path}: {error.strerror}") from None
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise
