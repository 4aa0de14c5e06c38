"""Files a person names (the config file, a crontab): read only when they are regular
files of a sensible size (SPEC §2), so that `/dev/zero`, a FIFO or a directory is one
clear line, not a read that never ends or a traceback."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from saathii_ops.errors import UsageError

# a config file or a crontab is a few KiB; a MiB is far beyond any real one
MAX_TEXT_FILE_BYTES = 1024 * 1024

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_regular_file(path: Path, what: str, *, limit: int = MAX_TEXT_FILE_BYTES) -> bytes:
    """The bytes of `path` (`what` names it in errors: "config file"). A missing file
    raises FileNotFoundError (the caller decides what that means); anything else that is
    not a regular file of at most `limit` bytes is a UsageError."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = next((name for test, name in _KINDS if test(mode)), "something else")
        raise UsageError(f"{what} {path} is {kind}, not a regular file")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(limit + 1)  # bounded even if the file grows meanwhile
        except OSError as exc:
            raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise UsageError(
            f"{what} {path} is larger than {limit // 1024} KiB: not a {what} saathii-ops reads"
        )
    return data
