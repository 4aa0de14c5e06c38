"""The output layer's generic half: a report becomes a Rich summary for people, plain text
under cron, or one JSON document for machines. What a screen of its own needs lives
beside it: `render_status` (status, the jobs), `render_cron` (the crontab), `render_demo`,
`prometheus` (status as Prometheus text)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from saathii_ops.output.text import escape_controls
from saathii_ops.reports import Report, SpooledRecords, output_fields

if TYPE_CHECKING:
    from saathii_ops.jobs.reconcile import ReconcileReport
    from saathii_ops.runtime.runner import RunResult

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
    """One JSON document; the records of a SpooledRecords are written into it a line at a
    time, never held together (the document is laid out with a placeholder string for each,
    then written piece by piece)."""
    import json  # imported by the output that needs it: not at start-up
    import uuid

    spooled: dict[str, SpooledRecords] = {}
    tag = uuid.uuid4().hex

    def placeholder(value: Any) -> str:
        if not isinstance(value, SpooledRecords):
            raise TypeError(f"{type(value).__name__} is not JSON serializable")
        marker = f"<records {tag} {len(spooled)}>"
        spooled[json.dumps(marker)] = value
        return marker

    text = json.dumps(to_jsonable(data), indent=2, default=placeholder)
    out = console.file
    done = 0
    for marker, records in spooled.items():
        at = text.index(marker, done)
        line = text[text.rfind("\n", 0, at) + 1 : at]
        indent = " " * (len(line) - len(line.lstrip(" ")))
        out.write(text[done:at])
        _write_json_list(out, records, indent)
        done = at + len(marker)
    out.write(text[done:] + "\n")


def _write_json_list(out: Any, records: SpooledRecords, indent: str) -> None:
    """The records as a JSON list, laid out as json.dumps(indent=2) lays out a field's list
    at `indent` (each record on one line)."""
    if not records.count:
        out.write("[]")
        return
    out.write("[")
    separator = "\n"
    for line in records.json_lines():
        out.write(f"{separator}{indent}  {line}")
        separator = ",\n"
    out.write(f"\n{indent}]")


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
    """`database`: the line naming the database the run used and where its URL came from.

    Not on a terminal (a cron log): the run's one key=value line (`run_log_line`), then
    the records that matter, indented."""
    header = {
        "job": result.job,
        "database": database,
        "outcome": result.outcome,
        "exit_code": int(result.exit_code),
        "reason": result.reason,
        "paused_by": result.paused_by,
        "paused_reason": result.paused_reason,
        "now": result.now,
        "duration_seconds": round(result.duration_seconds, 6),
        "error": result.error,
        "warning": result.warning,
    }
    if json_output:
        body = dict(header, report=to_jsonable(result.report) if result.report else None)
        if result.after_commit is not None:
            body["after_commit"] = to_jsonable(result.after_commit)
        emit_json(console, body)
        return
    if not console.is_terminal:
        console.file.write(escape_controls(run_log_line(result, database)) + "\n")
        if result.report is not None:
            _write_records(console, result.report)
        if result.after_commit is not None:
            after = _logfmt(result.after_commit.as_dict())  # its error is Redis's text
            console.file.write(escape_controls(f"  after_commit {after}") + "\n")
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
    if result.report is not None:
        summary.update(result.report.for_people())
    render_mapping(console, title, summary)
    if result.after_commit is not None:
        render_mapping(console, "after commit", result.after_commit.as_dict())


def run_log_line(result: RunResult, database: str | None) -> str:
    """A run in one key=value line, the same for every job and outcome (SPEC §9): job,
    outcome, exit code, duration (the recorded one `jobs history` shows), who paused it
    and why, the report's figures (lists of ids shortened), the error, the database and
    the headline as `summary`."""
    fields: dict[str, Any] = {
        "job": result.job,
        "outcome": result.outcome,
        "exit_code": int(result.exit_code),
        # to the microsecond, as recorded: the very value `jobs history --json` shows
        "duration_seconds": round(result.duration_seconds, 6),
        "now": result.now,
        "reason": result.reason,
        "paused_by": result.paused_by,
        "paused_reason": result.paused_reason,
    }
    report = result.report
    if report is not None:
        fields.update(
            {k: v for k, v in report.for_people().items() if not _is_records(v) and v != []}
        )
    fields.update(error=result.error, warning=result.warning, database=database)
    if report is not None:
        # a report without a headline of its own (the audit) says what it found
        fields["summary"] = report.headline() or report.found()
    return _logfmt(fields)


def error_log_line(job: str, error: str, exit_code: int, duration_seconds: float) -> str:
    """The key=value line of a run that ended in an error before it had a result (the
    database unreachable, a schema not ready): its log still says so in the same form."""
    fields = {
        "job": job,
        "outcome": "failed",
        "exit_code": exit_code,
        "duration_seconds": round(duration_seconds, 6),
        "error": error,
    }
    return _logfmt(fields)


def _logfmt(fields: Mapping[str, Any]) -> str:
    """key=value pairs (logfmt); a field with no value is left out. Lists of ids are
    shortened (`format_value`): the line stays one line of a readable size."""
    return " ".join(
        f"{key}={_quoted(_log_text(value, format_value))}"
        for key, value in fields.items()
        if value is not None
    )


# a value written as it is; anything else (a space, a quote, `=`, a control character,
# nothing at all) is quoted as a JSON string
_BARE = re.compile(r'[^\s"=\\\x00-\x1f\x7f-\x9f]+')


def _quoted(text: str) -> str:
    if _BARE.fullmatch(text):
        return text
    import json

    return json.dumps(text, ensure_ascii=False)


def _log_text(value: Any, lists: Callable[[Any], str]) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return lists(value)


def _every_item(value: Any) -> str:
    """A list in a record: every item, comma-separated (a record's lists are short)."""
    if isinstance(value, list | tuple):
        return ",".join(_log_text(item, str) for item in value)
    return str(value)


def _write_records(console: Console, report: Report) -> None:
    """A report's records, one indented key=value line each: all of them for a report
    with a headline (it keeps only the records that matter: ended and skipped calls),
    the first MAX_ROWS_SHOWN of the others' (--json has them all). Written as text, a
    line a record (a cleanup may end 10,000 calls)."""
    limit = None if report.headline() is not None else MAX_ROWS_SHOWN
    lines = []
    for key, value in report.for_people().items():
        if not _is_records(value):
            continue
        shown = value if limit is None else value[:limit]
        names = None if isinstance(shown[0], Mapping) else [f.name for f in output_fields(shown[0])]
        lines += [f"  {key} {_record_pairs(row, names)}" for row in shown]
        if len(value) > len(shown):
            lines.append(f"  {key} (+{len(value) - len(shown)} more; --json shows all)")
    if lines:
        console.file.write(escape_controls("\n".join(lines)) + "\n")


def _record_pairs(row: Any, names: list[str] | None) -> str:
    """A record (a dict, or a dataclass of the fields `names`) as key=value pairs."""
    items = row.items() if names is None else ((name, getattr(row, name)) for name in names)
    pairs = []
    for key, value in items:
        if value is None:
            continue
        if type(value) is int:  # most of a record: written as it is
            pairs.append(f"{key}={value}")
        else:
            pairs.append(f"{key}={_quoted(_log_text(value, _every_item))}")
    return " ".join(pairs)


def render_reconcile(console: Console, report: ReconcileReport, *, json_output: bool) -> None:
    """`wallets reconcile`: the counts, then each finding and what was (or would be) done;
    the rows before and after are in --json and `wallets audit --resolved`."""
    if json_output:
        emit_json(console, report)
        return
    what = "applied" if report.applied else "preview (nothing was changed)"
    console.print(f"wallets reconcile: {what}: {report.headline()}", markup=False)
    if report.reason is not None:
        console.print(f"  reason: {report.reason}", markup=False)
    if not report.items:
        console.print("  nothing to correct", markup=False)
        return
    columns = ("finding", "action", "wallet_id", "call_id", "coins_change")
    rows = [
        {
            **{name: getattr(item, name) for name in columns},
            "uncollectable": item.uncollectable_coins,
            "correction_id": item.correction_id,
            "detail": item.detail,
        }
        for item in report.items
    ]
    render_rows(console, "findings", rows)
