"""How times, durations and counts are written for people, in every command's output.

Times always carry their timezone: UTC, unless a caller names another (the business
timezone where the business day matters). Counts are written as words
("calls charged 3"), the same in every command; `--json` keeps their field names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo


def moment(value: datetime, tz: tzinfo = UTC) -> str:
    """2026-12-03 07:25:26 UTC"""
    local = value.astimezone(tz)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


def minute(value: datetime, tz: tzinfo = UTC) -> str:
    """2026-12-03 07:25 UTC"""
    local = value.astimezone(tz)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def duration(seconds: float) -> str:
    """< 0.01 s, 0.04 s, 0.6 s, 12 s, 3 min 5 s, 2 h 10 min"""
    if seconds < 0.01:
        return "< 0.01 s"
    if seconds < 0.1:
        return f"{seconds:.2f} s"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def relative(value: datetime, now: datetime) -> str:
    """3 min ago, in 5 min, just now (within a minute), 2 h ago, 3 days ago."""
    seconds = (value - now).total_seconds()
    span = abs(seconds)
    if span < 60:
        return "just now" if seconds <= 0 else "within a minute"
    if span < 3600:
        amount = f"{int(span // 60)} min"
    elif span < 48 * 3600:
        hours, rest = divmod(int(span // 60), 60)
        amount = f"{hours} h {rest} min" if rest and hours < 10 else f"{hours} h"
    else:
        amount = f"{int(span // 86400)} days"
    return f"{amount} ago" if seconds < 0 else f"in {amount}"


# the fields whose name alone says too little to a person; `--help` explains the rest
PEOPLE_NAMES = {
    "replanned_calls": "calls planned again",  # their rows changed under the plan
    "replaced": "reassigned",  # the date's badge was there already: written again
    "online_after": "still online",
    "wallets_off": "wallets off the ledger",
}


def count_name(name: str) -> str:
    """A report's field as words, on screen (`--json` and log lines keep the name):
    calls_charged -> calls charged, replanned_calls -> calls planned again."""
    return PEOPLE_NAMES.get(name, name.replace("_", " "))


def counts(values: Mapping[str, int] | None, *, zeros: bool = False) -> str:
    """calls charged 3, coins charged 90 (zeros left out unless asked for)."""
    shown = [f"{count_name(k)} {v}" for k, v in (values or {}).items() if zeros or v]
    if shown:
        return ", ".join(shown)
    return "all counts 0" if values else "-"


def yes_no(value: bool | None, unknown: str = "unknown") -> str:
    return unknown if value is None else ("yes" if value else "no")


def plural(n: int, word: str, words: str | None = None) -> str:
    """1 problem, 2 problems."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


# C0 and C1 control characters but newline and tab: an ESC in a pause reason or a row
# must not drive the operator's terminal
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escape_controls(text: str) -> str:
    """Text from people or the database, printable as written: ESC becomes \\x1b."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


# where a URL or a path may break without reading as two words: after these
_BREAKS_AFTER = re.compile(r"(?<=[/@?&:])")


def longest_piece(text: str) -> int:
    """The width `wrap` needs: its longest word, or piece of one between separators."""
    return max(
        (len(piece) for word in text.split() for piece in _BREAKS_AFTER.split(word)), default=0
    )


def wrap(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width`, broken at spaces and, in a word longer than a
    line (a URL, a path), after a / @ ? & or : of it; a piece longer than the line is
    left whole for whoever shows it to fold."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if len(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
            line = ""
        for piece in _BREAKS_AFTER.split(word) if len(word) > width else [word]:
            if line and len(line) + len(piece) > width:
                lines.append(line)
                line = ""
            line += piece
    return [*lines, line] if line else lines
