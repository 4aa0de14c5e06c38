"""The base of every service's report: a small dataclass of counts and affected ids."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class Report:
    def counts(self) -> dict[str, int]:
        """The integer fields: what the audit table keeps of a run."""
        return {
            f.name: value
            for f in dataclasses.fields(self)
            if isinstance(value := getattr(self, f.name), int) and not isinstance(value, bool)
        }

    @property
    def failed_rows(self) -> int:
        """Rows the job could not process; a run with any exits 1."""
        return 0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
