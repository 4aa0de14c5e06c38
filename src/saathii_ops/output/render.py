"""The output layer's generic half: a result becomes a Rich summary for people, plain text
under cron, or one JSON document for machines, through one entry, `show`. What a screen of
its own needs lives beside it: `status_screen` (status, the jobs), `cron_screen` (the
crontab), `demo_screen`, `prometheus` (status as Prometheus text)."""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from saathii_ops.output.text import count_name, escape_controls
from saathii_ops.reports import Report, SpooledRecords, output_fields

if TYPE_CHECKING:
    from rich.table import Table

    from saathii_ops.jobs.reconcile import ReconcileReport
    from saathii_ops.runtime.runner import RunResult

MAX_IDS_SHOWN = 20
MAX_ROWS_SHOWN = 50  # of a report's records, for people; --json has them all


class VerbatimConsole(Console):
    """The one console rule of every command's output: text is shown as written. Pause
    reasons, user names, crontab lines and error text come from people or the database,
    so nothing is read as Rich markup, emoji codes or highlighting, and control characters
    are escaped (an ESC in a reason must not drive the terminal). Every string Rich
    prints (table cells and titles included) passes through render_str.

    A line longer than a terminal is wrapped between words (the terminal would cut a word
    in two); anywhere else (a cron log, a pipe) it stays one line, as written."""

    def __init__(self, *, stderr: bool = False) -> None:
        super().__init__(stderr=stderr, markup=False, emoji=False, highlight=False)
        self.soft_wrap = not self.is_terminal

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
        rows = [[count_name(key), format_value(value)] for key, value in scalars.items()]
        table = fitted_table(console, ["", ""], rows, title=title, show_header=False)
        table.columns[0].style = "bold"
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
        headers = [count_name(column) for column in columns]
        cells = [[format_value(row[c]) for c in columns] for row in dicts]
        console.print(fitted_table(console, headers, cells, title=title))
    else:
        # plain text (a cron log): written as it is, a line a row; Rich's print parses
        # markup and measures every line (0.6 s for a cleanup's 10,000 ended calls)
        lines = [f"{title}:"]
        lines += ["  " + "  ".join(f"{c}={format_value(row[c])}" for c in columns) for row in dicts]
        console.file.write(escape_controls("\n".join(lines)) + "\n")


def fitted_table(
    console: Console,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    show_header: bool = True,
    grid: bool = False,
    max_width: int | None = None,
) -> Table:
    """A table as wide as the console at most, that cuts no value: a column narrower than
    its text wraps it at spaces; only when even its longest words cannot fit does the widest
    column fold them (a long URL, a list of ids), never ending a value in "…". `grid`: no
    borders, two spaces between columns; `max_width`: else the console's width."""
    from rich.table import Table  # for people on a terminal: not on a cron run's path

    width = console.width if max_width is None else max_width
    if grid:
        table = Table.grid(padding=(0, 2, 0, 0), pad_edge=False)
        room = width - 2 * (len(headers) - 1)
    else:
        # as wide as its title (a narrow table would wrap it), as the console allows
        least = min(cell_len(title or ""), width)
        table = Table(title=title, show_header=show_header, title_justify="left", min_width=least)
        room = width - 3 * len(headers) - 1  # borders and a space each side
    cells = [
        [escape_controls(text) for text in column] for column in zip(headers, *rows, strict=True)
    ]
    if not show_header or grid:
        cells = [column[1:] for column in cells]
    for header, fitted in zip(headers, _fitted_widths(cells, room), strict=True):
        table.add_column(header, width=fitted, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def _fitted_widths(columns: Sequence[Sequence[str]], room: int) -> list[int]:
    """Each column's width: as wide as its longest line while they all fit in `room`; else
    the widest column that can still wrap at a space gives a character, and so on; the
    widest of all when none can (it folds its words)."""
    widths = [
        max((cell_len(line) for text in column for line in text.splitlines()), default=1)
        for column in columns
    ]
    least = [
        max((cell_len(word) for text in column for word in text.split()), default=1)
        for column in columns
    ]
    widths = [max(width, 1) for width in widths]
    while sum(widths) > room:
        wrapping = [n for n, width in enumerate(widths) if width > least[n]]
        shrinking = wrapping or [n for n, width in enumerate(widths) if width > 1]
        if not shrinking:
            break
        widths[max(shrinking, key=lambda n: widths[n])] -= 1
    return widths


def _is_records(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, Mapping) or dataclasses.is_dataclass(v) for v in value)
    )


def show(
    console: Console,
    result: Any,
    *,
    json_output: bool,
    title: str = "",
    database: str | None = None,
) -> None:
    """The one way a command's result reaches stdout: one JSON document with --json, else
    the summary for people (a terminal) or plain lines (a cron log), chosen by its type.

    A job's run (`RunResult`; `database` names the database it used and where its URL
    came from), a reconcile's plan, or any other report (a dataclass or a mapping, shown
    under `title`: its scalars, then its records as tables)."""
    if _is_instance(result, "saathii_ops.runtime.runner", "RunResult"):
        _show_run(console, result, json_output=json_output, database=database)
    elif json_output:
        emit_json(console, result)
    elif _is_instance(result, "saathii_ops.jobs.reconcile", "ReconcileReport"):
        _show_reconcile(console, result)
    elif isinstance(result, Mapping):
        render_mapping(console, title, result)
    else:
        # a field with no value (e.g. no --listener given) is left out, not shown as "-"
        fields = dataclasses.asdict(result)
        render_mapping(console, title, {k: v for k, v in fields.items() if v is not None})


def _is_instance(value: Any, module: str, name: str) -> bool:
    """isinstance, without importing `module` for it: a value of its class exists only once
    the module is imported (a `db current` need not load the runner to be shown)."""
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(value, getattr(loaded, name))


def _show_run(
    console: Console, result: RunResult, *, json_output: bool, database: str | None
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


def _show_reconcile(console: Console, report: ReconcileReport) -> None:
    """`wallets reconcile`: the counts, then each finding and what was (or would be) done;
    the rows before and after are in --json and `wallets audit --resolved`."""
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
