"""The marked block in a crontab, as text (SPEC §10): found, replaced and removed with
every byte outside it kept, its install time and install options read back, and a
damaged block refused. Values worked out by hand."""

from __future__ import annotations

import pytest

from saathii_ops.errors import UsageError
from saathii_ops.scheduling.block import (
    BLOCK_BEGIN,
    BLOCK_END,
    BlockSpan,
    find_block,
    installed_at,
    recorded_options,
    with_block,
    without_block,
    without_stamp,
)

BEGIN = BLOCK_BEGIN + " installed 2026-11-29T06:00:00+00:00"
BLOCK = f"{BEGIN}\n* * * * * saathii-ops coins deduct\n{BLOCK_END}\n"
BEFORE = "MAILTO=ops@example.com\r\n0 3 * * * backup  # theirs\n"
AFTER = "\n# a comment of theirs\n"


def test_the_markers() -> None:
    assert BLOCK_BEGIN == "# BEGIN saathii-ops (managed by saathii-ops cron install; do not edit)"
    assert BLOCK_END == "# END saathii-ops"


def test_no_block_is_none() -> None:
    assert find_block("", "crontab") is None
    assert find_block(BEFORE + "# BEGIN saathii-ops-other\n", "crontab") is None  # not ours


def test_the_block_spans_its_markers_and_the_end_markers_line_break() -> None:
    content = BEFORE + BLOCK + AFTER
    assert find_block(content, "crontab") == BlockSpan(len(BEFORE), len(BEFORE + BLOCK), BLOCK)
    # a bare begin marker (an older install's) is a begin marker too
    bare = "# BEGIN saathii-ops\nx\n# END saathii-ops"  # no line break at the end
    assert find_block(bare, "crontab") == BlockSpan(0, len(bare), bare)


@pytest.mark.parametrize(
    ("content", "begins", "ends"),
    [
        (BLOCK + BLOCK, 2, 2),
        (BEGIN + "\n", 1, 0),
        (BLOCK_END + "\n", 0, 1),
        (f"{BLOCK_END}\n{BEGIN}\n", 1, 1),  # the end before the begin
    ],
)
def test_a_damaged_block_is_refused(content: str, begins: int, ends: int) -> None:
    with pytest.raises(UsageError) as damaged:
        find_block(content, "crontab of ops")
    assert str(damaged.value) == (
        f"crontab of ops: the saathii-ops block is damaged ({begins} begin and {ends} end "
        "markers): fix or delete it by hand, then install again"
    )


def test_a_new_block_goes_first_and_an_installed_one_is_replaced_in_place() -> None:
    new = f"{BLOCK_BEGIN} installed 2026-11-30T06:00:00+00:00\n{BLOCK_END}\n"
    assert with_block(BEFORE + AFTER, new, "crontab") == new + BEFORE + AFTER
    assert with_block(BEFORE + BLOCK + AFTER, new, "crontab") == BEFORE + new + AFTER


def test_removing_the_block_keeps_everything_around_it() -> None:
    assert without_block(BEFORE + BLOCK + AFTER, "crontab") == BEFORE + AFTER
    assert without_block(BEFORE, "crontab") == BEFORE


def test_the_install_time_is_read_and_left_out_of_what_drift_compares() -> None:
    assert installed_at(BLOCK) == "2026-11-29T06:00:00+00:00"
    assert without_stamp(BLOCK) == (
        f"{BLOCK_BEGIN}\n* * * * * saathii-ops coins deduct\n{BLOCK_END}\n"
    )
    unstamped = f"{BLOCK_BEGIN}\n{BLOCK_END}\n"
    assert installed_at(unstamped) is None
    assert without_stamp(unstamped) == unstamped


def test_the_recorded_install_options() -> None:
    block = (
        f"{BEGIN}\n"
        "# installed with: --config /etc/saathii/ops.toml --log-dir '/var/log/my logs' "
        "--colour always --user ops\n"
        f"{BLOCK_END}\n"
    )
    assert recorded_options(block) == {  # only install's options: --colour is none
        "--config": "/etc/saathii/ops.toml",
        "--log-dir": "/var/log/my logs",
        "--user": "ops",
    }
    assert recorded_options(BLOCK) == {}  # an older block records none
