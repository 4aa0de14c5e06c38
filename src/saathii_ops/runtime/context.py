"""What a job's service is handed: one run's session, instant, identifier and settings.

The runner makes it (a run's identifier, in its audit row, its pings and the settlements
it writes); a service reads it and never commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from saathii_ops.settings import Settings

Options = TypeVar("Options")


def new_run_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class RunContext(Generic[Options]):
    session: Session
    now: datetime  # the run's "now" (SPEC §3)
    run_id: str
    apply: bool  # false: plan only (a dry-run, in a read-only transaction)
    settings: Settings
    options: Options  # the command's options (None for a job that has none)
