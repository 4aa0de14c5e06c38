"""The job locks (SPEC §9): one run of a job at a time, on any host. PostgreSQL: a
transaction-level advisory lock; SQLite: an flock on a file beside the database.
"""

from __future__ import annotations

import fcntl
import socket
import time
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.db.engine import create_private_file, is_sqlite
from saathii_ops.errors import OpsError
from saathii_ops.runtime.registry import Job

# PostgreSQL advisory locks are keyed by two int4; the first names this project.
ADVISORY_LOCK_NAMESPACE = 0x5AA7

# How long a change outside the registry (`wallets reconcile --apply`) waits for the job
# locks it takes: a billing run holds its lock for seconds.
LOCK_WAIT_SECONDS = 30.0
LOCK_POLL_SECONDS = 0.2


def wait_for_lock(locks: ExitStack, session: Session, job: Job) -> None:
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        attempt = ExitStack()
        if attempt.enter_context(job_lock(session, job.lock_name(socket.gethostname()))):
            locks.enter_context(attempt)
            return
        attempt.close()
        if time.monotonic() >= deadline:
            raise OpsError(
                f"{job.name} held its lock for {LOCK_WAIT_SECONDS:g} s (a run in progress): "
                "nothing was changed; try again"
            )
        time.sleep(LOCK_POLL_SECONDS)


@contextmanager
def job_lock(session: Session, lock_name: str) -> Iterator[bool]:
    """Hold the job's lock until the transaction ends; yields whether it was acquired.

    PostgreSQL: a transaction-level advisory lock, released by the server when
    the transaction ends or the process dies. SQLite (one host by nature): an
    flock on a file beside the database, released by the kernel likewise.
    """
    if not is_sqlite(session):
        acquired = session.execute(
            sa.text("SELECT pg_try_advisory_xact_lock(:namespace, :key)"),
            {"namespace": ADVISORY_LOCK_NAMESPACE, "key": _lock_key(lock_name)},
        ).scalar_one()
        yield bool(acquired)
        return
    database = session.get_bind().engine.url.database
    if not database or database == ":memory:":
        yield True  # a private in-memory database: nobody else can run
        return
    lock_path = Path(f"{database}.{lock_name}.lock")
    create_private_file(lock_path)
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_key(lock_name: str) -> int:
    key = zlib.crc32(lock_name.encode())
    return key - 2**32 if key >= 2**31 else key  # int4 is signed
