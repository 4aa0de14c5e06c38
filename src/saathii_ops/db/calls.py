"""The app's call statuses (`user_calls.status`), the one place they are named."""

from __future__ import annotations

from enum import StrEnum


class CallStatus(StrEnum):
    ONGOING = "ongoing"
    COMPLETED = "completed"
    DROPPED = "dropped"


# what settlement writes on a call it ends (the audit checks a settled call still has it)
SETTLED_CALL_STATUS = CallStatus.DROPPED
