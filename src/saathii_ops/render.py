"""The output layer's generic half: a report becomes a Rich summary for people, plain text
under cron, or one JSON document for machines. What a screen of its own needs lives
beside it: `render_status` (status, the jobs), `render_cron` (the crontab), `render_demo`,
`prometheus` (status as Prometheus text)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from saathii_ops.formatting import escape_controls
from saathii_ops.reports import Report, output_fields

if TYPE_CHECKING:
    from saathii_ops.runner import RunResult

MAX_IDS_SHOWN = 20
MAX_ROWS_SHOWN = 50  # of a report's records, for people; --json has them all


class VerbatimConsole(Console):
    """The one console rule of every command's output: text is shown as written. Pause
    reasons, user names, crontab lines and error text come from people or the database,
    so nothing is read as Rich markup, emoji codes or highlighting, and control characters
    are escaped (an ESC in a reason must not drive the terminal). Every string Rich
    prints (table cells and titles included) passes through render_str."""

    def __init__(self, *, stderr: bool = False) -> None:
        super().__init__(stderr=stderr, markup=False, emoji=False, highlight=False, soft_wrap=True)

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(escape_controls(text), **kwargs)


def stdout_console() -> Console:
    return VerbatimConsole()


def stderr_console() -> Console:
    return VerbatimConsole(stderr=True)


def to_jsonable(value: Any) -> Any:
    """Decimals become strings (exact to the paisa), times ISO-8601."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in output_fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def emit_json(console: Console, data: Any) -> None:
    import json  # imported by the output that needs it: not at start-up

    console.file.write(json.dumps(to_jsonable(data), indent=2) + "\n")


def format_value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, list | tuple):
        if not value:
            return "-"
        shown = ", ".join(str(v) for v in value[:MAX_IDS_SHOWN])
        more = len(value) - MAX_IDS_SHOWN
        return f"{shown} (+{more} more)" if more > 0 else shown
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def render_mapping(console: Console, title: str, data: Mapping[str, Any]) -> None:
    """Scalar fields as a two-column table; lists of records as tables of their own."""
    records = {k: v for k, v in data.items() if _is_records(v)}
    scalars = {k: v for k, v in data.items() if k not in records}
    if console.is_terminal:
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        for key, value in scalars.items():
            table.add_row(key.replace("_", " "), format_value(value))
        console.print(table)
    else:
        console.print(title)
        for key, value in scalars.items():
            console.print(f"  {key}: {format_value(value)}")
    for key, rows in records.items():
        render_rows(console, key.replace("_", " "), rows[:MAX_ROWS_SHOWN])
        if len(rows) > MAX_ROWS_SHOWN:
            console.print(f"  (+{len(rows) - MAX_ROWS_SHOWN} more; --json shows all)")


def render_rows(console: Console, title: str, rows: Sequence[Any]) -> None:
    dicts = [to_jsonable(row) for row in rows]
    columns = list(dicts[0]) if dicts else []
    if console.is_terminal:
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column.replace("_", " "))
        for row in dicts:
            table.add_row(*(format_value(row[c]) for c in columns))
        console.print(table)
    else:
        # plain text (a cron log): written as it is, a line a row; Rich's print parses
        # markup and measures every line (0.6 s for a cleanup's 10,000 ended calls)
        lines = [f"{title}:"]
        lines += ["  " + "  ".join(f"{c}={format_value(row[c])}" for c in columns) for row in dicts]
        console.file.write(escape_controls("\n".join(lines)) + "\n")


def _is_records(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, Mapping) or dataclasses.is_dataclass(v) for v in value)
    )


def render_run(
    console: Console, result: RunResult, *, json_output: bool, database: str | None = None
) -> None:
    """`database`: the line naming the database the run used and where its URL came from."""
    header = {
        "job": result.job,
        "database": database,
        "outcome": result.outcome,
        "reason": result.reason,
        "now": result.now,
        "duration_seconds": round(result.duration_seconds, 3),
        "error": result.error,
        "warning": result.warning,
    }
    if json_output:
        body = dict(header, report=to_jsonable(result.report) if result.report else None)
        if result.after_commit is not None:
            body["after_commit"] = to_jsonable(result.after_commit)
        emit_json(console, body)
        return
    # what made it exit 1 is its headline, never "ok" (an audit that found something)
    found = result.report.found() if result.report is not None else None
    title = f"{result.job}: {result.outcome}"
    if found and result.outcome == "ok":
        title = f"{result.job}: {found}"
    elif found:
        title += f": {found}"
    if result.outcome == "dry-run":
        title += " (nothing was changed)"
    summary: dict[str, Any] = {k: v for k, v in header.items() if v is not None}
    headline = result.report.headline() if result.report is not None else None
    if result.report is not None and headline is not None and not console.is_terminal:
        _render_headline(console, title, summary, headline, result.report)
    else:
        if result.report is not None:
            summary.update(result.report.for_people())
        render_mapping(console, title, summary)
    if result.after_commit is not None:
        render_mapping(console, "after commit", result.after_commit.as_dict())


def _render_headline(
    console: Console, title: str, header: dict[str, Any], headline: str, report: Report
) -> None:
    """Plain text (a cron log entry): the run in one line, then each of its records in
    full, one line each; a report with a headline keeps only the records that matter."""
    del header["job"], header["outcome"]
    context = " ".join(f"{k}={format_value(v)}" for k, v in header.items())
    console.print(f"{title}: {headline}; {context}")
    for key, value in report.as_dict().items():
        if _is_records(value):
            render_rows(console, key.replace("_", " "), value)
