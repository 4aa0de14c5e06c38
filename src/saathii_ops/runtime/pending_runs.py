"""Failed runs the database could not take when they failed, recorded when it answers
again (SPEC §9: an interrupted run is recorded when the database can be reached).

A run whose connection dies with the server (a restart, a failover) cannot write its
failure record then. It keeps the record in a file of this host's (one per database,
under the user's data directory, 0600, JSON lines), and the next run of any job on that
database, on this host, writes it to ops_job_runs before it starts, once (its run_uuid
is unique there). A record is kept on the host that made it: a Kubernetes pod's is lost
with the pod.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from saathii_ops.db.engine import bound_statements, create_private_file, transaction
from saathii_ops.db.tables import ops_job_runs as runs
from saathii_ops.output.masking import first_line

log = logging.getLogger(__name__)

TIMES = ("started_at", "finished_at", "run_now")


def spool_path(url: URL) -> Path:
    """This host's file of the unrecorded runs of the database at `url` (named by its host,
    port, database and user, never its password)."""
    from platformdirs import user_data_path

    where = url.set(password=None).render_as_string(hide_password=True)
    name = hashlib.sha256(where.encode()).hexdigest()[:16]
    return user_data_path("saathii-ops") / "unrecorded-runs" / f"{name}.jsonl"


@contextmanager
def _locked(path: Path) -> Iterator[IO[str]]:
    create_private_file(path)
    with path.open("r+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def keep(url: URL, record: dict[str, Any]) -> bool:
    """Keep a failed run's record for the next run to write; whether it was kept."""
    line = json.dumps(
        {k: v.isoformat() if isinstance(v, datetime) else v for k, v in record.items()}
    )
    try:
        with _locked(spool_path(url)) as handle:
            handle.seek(0, os.SEEK_END)
            handle.write(line + "\n")
        return True
    except Exception as exc:  # the run's own line says it was not recorded
        log.warning("could not keep the failed run's record on this host: %s", exc)
        return False


def record_kept(engine: Engine, bound_seconds: float) -> int:
    """Write the kept records of this database to ops_job_runs (those not there already),
    then forget them; how many were written. Best effort: a failure leaves them kept."""
    path = spool_path(engine.url)
    try:
        if not path.stat().st_size:
            return 0
    except FileNotFoundError:
        return 0
    try:
        with _locked(path) as handle:
            records = [json.loads(line) for line in handle.read().splitlines() if line.strip()]
            written = _write(engine, records, bound_seconds) if records else 0
            # emptied, not removed: a run waiting for the lock appends to this file
            handle.truncate(0)
        return written
    except Exception as exc:  # still unwritable: the run says why in its own line
        log.debug("could not record the failed runs kept on this host: %s", first_line(exc))
        return 0


def _write(engine: Engine, records: list[dict[str, Any]], bound_seconds: float) -> int:
    with transaction(engine) as session:
        bound_statements(session, bound_seconds)
        uuids = [record["run_uuid"] for record in records]
        there = set(
            session.execute(sa.select(runs.c.run_uuid).where(runs.c.run_uuid.in_(uuids))).scalars()
        )
        new = [
            {k: datetime.fromisoformat(v) if k in TIMES else v for k, v in record.items()}
            for record in records
            if record["run_uuid"] not in there
        ]
        if new:
            session.execute(sa.insert(runs), new)
        session.commit()
    return len(new)
