"""The marked block in a crontab, as text: finding it, replacing it, removing it, and the
install options and install time it records.

The crontab around the block is handled as text, never re-rendered: python-crontab's
rendering normalises lines it did not write (whitespace, comments, environment lines),
and every byte outside the block must stay as it was.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from saathii_ops.errors import UsageError

BLOCK_ID = "saathii-ops"

BLOCK_BEGIN = f"# BEGIN {BLOCK_ID} (managed by saathii-ops cron install; do not edit)"

BLOCK_END = f"# END {BLOCK_ID}"

INSTALLED_AT = " installed "  # the begin marker ends with " installed <UTC time>"

# The block's own install options, so that `cron show` and `install --check` compare the
# installed block with what the same install would write now, not with the defaults.
OPTIONS_LINE = "# installed with: "

INSTALL_OPTIONS = (
    "--config",
    "--database-url",
    "--executable",
    "--log-dir",
    "--env-file",
    "--server-timezone",
    "--user",
    "--metrics-file",
)


def recorded_options(block: str) -> dict[str, str]:
    """The install options a block records (see OPTIONS_LINE); none for an older block."""
    for line in block.splitlines():
        if line.startswith(OPTIONS_LINE):
            words = shlex.split(line.removeprefix(OPTIONS_LINE))
            pairs = dict(zip(words[::2], words[1::2], strict=False))
            return {name: value for name, value in pairs.items() if name in INSTALL_OPTIONS}
    return {}


@dataclass(frozen=True)
class BlockSpan:
    start: int
    end: int
    text: str


def find_block(content: str, where: str) -> BlockSpan | None:
    """The installed block (from its begin marker to its end marker's line break)."""
    lines = content.splitlines(keepends=True)
    bare = [line.rstrip("\r\n") for line in lines]
    begins = [i for i, line in enumerate(bare) if _is_begin(line)]
    ends = [i for i, line in enumerate(bare) if line == BLOCK_END]
    if not begins and not ends:
        return None
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise UsageError(
            f"{where}: the {BLOCK_ID} block is damaged ({len(begins)} begin and {len(ends)} "
            "end markers): fix or delete it by hand, then install again"
        )
    start = sum(len(line) for line in lines[: begins[0]])
    end = sum(len(line) for line in lines[: ends[0] + 1])
    return BlockSpan(start, end, content[start:end])


def _is_begin(line: str) -> bool:
    return line == f"# BEGIN {BLOCK_ID}" or line.startswith(f"# BEGIN {BLOCK_ID} ")


def without_stamp(block: str) -> str:
    """The block minus the install time of its begin marker: what drift compares."""
    first, newline, rest = block.partition("\n")
    return first.partition(INSTALLED_AT)[0] + newline + rest


def installed_at(block: str) -> str | None:
    first = block.partition("\n")[0]
    return first.partition(INSTALLED_AT)[2] or None


def with_block(content: str, block: str, where: str) -> str:
    """The crontab with `block` in place of the installed one, else first: its lines then
    come before any environment line of the crontab, which therefore cannot change them."""
    span = find_block(content, where)
    if span is None:
        return block + content
    return content[: span.start] + block + content[span.end :]


def without_block(content: str, where: str) -> str:
    span = find_block(content, where)
    return content if span is None else content[: span.start] + content[span.end :]
