"""A dry-run names every affected id (SPEC §9): `--dry-run --json` lists every
call it would charge, beside those it would end or skip; the list is spooled (written
into the JSON document a line at a time, never held together)."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

from rich.console import Console
from sqlalchemy.engine import Engine

from saathii_ops.billing import charge as billing
from saathii_ops.db.engine import transaction
from saathii_ops.output.render import emit_json
from saathii_ops.reports import SpooledRecords
from saathii_ops.settings import Settings
from tests.conftest import Cli
from tests.factories import T0, add_call, add_user, run_context

NOW = T0 + timedelta(minutes=30)


def run_json(cli: Cli, *args: str) -> dict[str, Any]:
    result = cli("--now", NOW.isoformat(), "--json", *args)
    assert result.exit_code in (0, 1), result.stdout + result.stderr
    document: dict[str, Any] = json.loads(result.stdout)  # one valid document
    return document


def test_coins_deduct_dry_run_json_lists_every_call_it_would_charge(
    cli: Cli, engine: Engine
) -> None:
    with transaction(engine) as s:
        listener = add_user(s, role="listener", balance=0)
        rich = [add_user(s, balance=1000) for _ in range(3)]
        poor = add_user(s, balance=15)
        charged = [
            add_call(s, c, listener, start=NOW - timedelta(minutes=2, seconds=10), coins_spent=10)
            for c in rich
        ]
        # owes 20, 15 coins pay one more minute: charged 10, then ended
        ending = add_call(
            s, poor, listener, start=NOW - timedelta(minutes=2, seconds=10), coins_spent=10
        )
        skipped = add_call(s, rich[0], listener, start=NOW - timedelta(minutes=1), coins_spent=-10)
        idle = add_call(s, rich[1], listener, start=NOW - timedelta(seconds=10), coins_spent=10)
        s.commit()

    dry = run_json(cli, "coins", "deduct", "--dry-run")
    report = dry["report"]
    assert report["charged"] == [
        {"call_id": c, "caller_id": caller, "coins_charged": 20, "minutes_charged": 2}
        for c, caller in zip(charged, rich, strict=True)
    ] + [{"call_id": ending, "caller_id": poor, "coins_charged": 10, "minutes_charged": 1}]
    assert idle not in {c["call_id"] for c in report["charged"]}
    assert [e["call_id"] for e in report["ended"]] == [ending]
    assert [k["call_id"] for k in report["skipped"]] == [skipped]
    # the existing keys stay
    assert (report["calls_charged"], report["coins_charged"], report["calls_ended"]) == (4, 70, 1)

    real = run_json(cli, "coins", "deduct")["report"]
    assert real["charged"] is None  # a real run counts them (its report stays small)
    assert dict(real, charged=report["charged"]) == report

    text = cli("--now", NOW.isoformat(), "coins", "deduct", "--dry-run")
    # the text (a log line) counts them and says where the list is
    assert 'charged="0 (--json lists each)"' in text.stdout


def test_calls_cleanup_dry_run_json_lists_the_calls_it_would_charge(
    cli: Cli, engine: Engine
) -> None:
    with transaction(engine) as s:
        listener = add_user(s, role="listener", balance=0)
        caller = add_user(s, balance=1000, online=True, last_seen=NOW - timedelta(hours=1))
        stale = add_call(s, caller, listener, start=NOW - timedelta(minutes=20), coins_spent=10)
        s.commit()
    report = run_json(cli, "calls", "cleanup", "--dry-run")["report"]
    assert report["charged"] == [
        {"call_id": stale, "caller_id": caller, "coins_charged": 200, "minutes_charged": 20}
    ]
    assert [e["call_id"] for e in report["ended"]] == [stale]


def test_spooled_records_are_written_into_the_document_as_valid_json() -> None:
    records = SpooledRecords()
    for n in range(3):
        records.add({"call_id": n, "note": 'a "quoted" <records x> text'})
    empty = SpooledRecords()
    out = io.StringIO()
    emit_json(
        Console(file=out), {"a": 1, "nested": {"charged": records, "none": empty}, "z": "end"}
    )
    assert json.loads(out.getvalue()) == {
        "a": 1,
        "nested": {
            "charged": [{"call_id": n, "note": 'a "quoted" <records x> text'} for n in range(3)],
            "none": [],
        },
        "z": "end",
    }


def test_a_dry_run_report_holds_its_charged_calls_in_a_file_not_in_memory(
    engine: Engine,
) -> None:
    with transaction(engine) as s:
        listener = add_user(s, role="listener", balance=0)
        caller = add_user(s, balance=1000)
        add_call(s, caller, listener, start=NOW - timedelta(minutes=1), coins_spent=10)
        s.commit()
    with transaction(engine, read_only=True) as s:
        report = billing.deduct(run_context(s, NOW, Settings(), apply=False))
    assert isinstance(report.charged, SpooledRecords)
    assert report.charged.count == 1
    assert [r["coins_charged"] for r in report.charged.records()] == [10]
