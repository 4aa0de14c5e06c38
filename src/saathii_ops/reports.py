"""The base of every service's report: a small dataclass of counts and affected ids."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import IO, Any

# The metadata of a report's field that is for the program, not for its output
# (JSON, text, the audit row): e.g. what an after-commit step needs.
INTERNAL = {"internal": True}


def output_fields(value: Any) -> list[dataclasses.Field[Any]]:
    """A dataclass's fields that its output shows."""
    return [f for f in dataclasses.fields(value) if not f.metadata.get("internal")]


class SpooledRecords:
    """Records of a report too many to hold (every call a dry-run would charge): written
    to a temporary file as they are read from the database (a server-side cursor), one
    JSON object a line, and read back a line at a time by the JSON output, which writes
    them into its document as it goes. Memory stays flat however many there are."""

    def __init__(self) -> None:
        import tempfile

        # open as long as the report lives; deleted when closed or collected
        self._file: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self.count = 0

    def add(self, record: Mapping[str, Any]) -> None:
        import json

        self._file.write(json.dumps(record, separators=(", ", ": ")) + "\n")
        self.count += 1

    def json_lines(self) -> Iterator[str]:
        """Each record as one line of JSON, in the order added."""
        self._file.seek(0)
        for line in self._file:
            yield line.rstrip("\n")

    def records(self) -> Iterator[Any]:
        import json

        return (json.loads(line) for line in self.json_lines())

    def __str__(self) -> str:
        return f"{self.count} (--json lists each)"


@dataclasses.dataclass
class Report:
    def counts(self) -> dict[str, int]:
        """The integer fields: what the audit table keeps of a run."""
        return {
            f.name: value
            for f in output_fields(self)
            if isinstance(value := getattr(self, f.name), int) and not isinstance(value, bool)
        }

    @property
    def failed_rows(self) -> int:
        """Rows the job could not process; a run with any exits 1."""
        return 0

    def found(self) -> str | None:
        """What made the run exit 1 (rows it could not process; for an audit, what it
        found), in words for its headline; None when nothing did."""
        rows = self.failed_rows
        if not rows:
            return None
        return f"{rows} {'row' if rows == 1 else 'rows'} it could not process"

    def headline(self) -> str | None:
        """The run in one line, for a report whose plain-text output (a cron log entry)
        is that line and its records; None: every field on a line of its own."""
        return None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in output_fields(self)}

    def for_people(self) -> dict[str, Any]:
        """What a summary for people shows of the report (`--json` has every field): the
        fields themselves, records as they are (a summary shows the first few of each;
        copying them all into dicts first would cost a second per 100k rows)."""
        return {f.name: getattr(self, f.name) for f in output_fields(self)}


def _plain(value: Any) -> Any:
    """What `dataclasses.asdict` makes of a field's value."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
