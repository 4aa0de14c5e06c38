"""The identifier of a job run, shared by the runner and the settlements the run makes."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

_RUN_UUID = "saathii_ops.run_uuid"


def new_run_uuid() -> str:
    return uuid.uuid4().hex


def bind_run(session: Session, run_uuid: str) -> None:
    """The runner: this session's transaction is the run `run_uuid`."""
    session.info[_RUN_UUID] = run_uuid


def bound_run_uuid(session: Session) -> str | None:
    value = session.info.get(_RUN_UUID)
    return value if isinstance(value, str) else None


def run_uuid(session: Session) -> str:
    """The run this session's transaction belongs to (recorded in ops_job_runs by the
    runner); a service called outside the runner gets an identifier of its own."""
    value = session.info.setdefault(_RUN_UUID, new_run_uuid())
    assert isinstance(value, str)
    return value
