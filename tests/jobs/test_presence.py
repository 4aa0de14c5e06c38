"""Presence cleanup (SPEC §7), through the service and the CLI."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.db.tables import ops_job_runs, user_status
from saathii_ops.jobs import presence
from saathii_ops.settings import Settings
from tests.factories import T0, add_call, add_user, run_context

NOW = T0 + timedelta(minutes=30)


@pytest.fixture
def people(engine: Engine) -> dict[str, int]:
    """One user per case, each with a known fate at NOW (inactive limit 5 minutes)."""
    with transaction(engine) as s:
        ids = {
            "online_fresh": add_user(
                s, online=True, last_seen=NOW - timedelta(minutes=4, seconds=59)
            ),
            "online_exactly_5": add_user(s, online=True, last_seen=NOW - timedelta(minutes=5)),
            "online_stale": add_user(
                s, online=True, last_seen=NOW - timedelta(minutes=5, seconds=1)
            ),
            "online_very_stale": add_user(s, online=True, last_seen=NOW - timedelta(hours=3)),
            "offline_stale": add_user(s, online=False, last_seen=NOW - timedelta(hours=3)),
            "busy_on_call": add_user(s, online=True, last_seen=NOW, busy=True, wait_time=12),
            "listener_on_call": add_user(s, role="listener", online=True, last_seen=NOW, busy=True),
            "busy_no_call": add_user(s, online=True, last_seen=NOW, busy=True, wait_time=7),
            "busy_no_call_null_wait": add_user(s, online=True, last_seen=NOW, busy=True),
            "wait_zero": add_user(s, online=True, last_seen=NOW, busy=True, wait_time=0),
            "wait_negative_not_busy": add_user(s, online=False, last_seen=NOW, wait_time=-3),
            "busy_on_ended_call": add_user(s, online=True, last_seen=NOW, busy=True, wait_time=3),
        }
        add_call(s, ids["busy_on_call"], ids["listener_on_call"], start=NOW - timedelta(minutes=3))
        add_call(
            s,
            ids["busy_on_ended_call"],
            ids["listener_on_call"],
            start=NOW - timedelta(hours=1),
            status="completed",
        )
        s.commit()
    return ids


def _statuses(engine: Engine) -> dict[int, tuple[bool, bool, int | None]]:
    with transaction(engine) as s:
        rows = s.execute(
            sa.select(
                user_status.c.user_id,
                user_status.c.is_online,
                user_status.c.is_busy,
                user_status.c.wait_time,
            )
        )
        return {r.user_id: (r.is_online, r.is_busy, r.wait_time) for r in rows}


def test_service_plan_and_apply_agree_with_the_spec(engine: Engine, people: dict[str, int]) -> None:
    settings = Settings()
    with transaction(engine, read_only=True) as s:
        plan = presence.cleanup(run_context(s, NOW, settings, apply=False))
    with transaction(engine) as s:
        applied = presence.cleanup(run_context(s, NOW, settings, apply=True))
        s.commit()

    assert plan == applied
    assert applied.offline_ids == sorted([people["online_stale"], people["online_very_stale"]])
    assert applied.wait_time_ids == sorted([people["wait_zero"], people["wait_negative_not_busy"]])
    assert applied.no_call_ids == sorted(
        [people["busy_no_call"], people["busy_no_call_null_wait"], people["busy_on_ended_call"]]
    )
    assert (applied.marked_offline, applied.cleared_wait_time, applied.cleared_no_call) == (2, 2, 3)
    # 10 users were online; 2 went offline
    assert applied.online_after == 8
    assert applied.inactive_before == NOW - timedelta(minutes=5)

    after = _statuses(engine)
    assert after[people["online_stale"]] == (False, False, None)
    assert after[people["online_exactly_5"]] == (True, False, None)
    assert after[people["busy_on_call"]] == (True, True, 12)
    assert after[people["listener_on_call"]] == (True, True, None)
    assert after[people["busy_no_call"]] == (True, False, None)
    assert after[people["wait_zero"]] == (True, False, None)
    assert after[people["wait_negative_not_busy"]] == (False, False, None)


def test_last_seen_is_not_changed(engine: Engine, people: dict[str, int]) -> None:
    with transaction(engine) as s:
        presence.cleanup(run_context(s, NOW, Settings(), apply=True))
        s.commit()
    with transaction(engine) as s:
        last_seen = s.scalar(
            sa.select(user_status.c.last_seen).where(
                user_status.c.user_id == people["online_very_stale"]
            )
        )
    assert last_seen == NOW - timedelta(hours=3)


def test_cli_dry_run_reports_the_same_and_changes_nothing(
    cli, engine: Engine, people: dict[str, int]
) -> None:
    before = _statuses(engine)
    dry = cli("--now", NOW.isoformat(), "--json", "presence", "cleanup", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert _statuses(engine) == before

    real = cli("--now", NOW.isoformat(), "presence", "cleanup", "--json")
    assert real.exit_code == 0, real.stderr
    dry_doc, real_doc = json.loads(dry.stdout), json.loads(real.stdout)
    assert dry_doc["outcome"] == "dry-run" and real_doc["outcome"] == "ok"
    assert dry_doc["report"] == real_doc["report"]
    assert real_doc["report"]["marked_offline"] == 2
    assert real_doc["now"] == "2026-11-29T06:30:00+00:00"
    assert _statuses(engine) != before

    again = cli("--now", NOW.isoformat(), "--json", "presence", "cleanup")
    report = json.loads(again.stdout)["report"]
    assert (report["marked_offline"], report["cleared_wait_time"], report["cleared_no_call"]) == (
        0,
        0,
        0,
    )


def test_a_dry_run_records_no_run_and_a_real_run_records_one(
    cli, engine: Engine, people: dict[str, int]
) -> None:
    cli("--now", NOW.isoformat(), "presence", "cleanup", "--dry-run")
    cli("--now", NOW.isoformat(), "presence", "cleanup")
    with transaction(engine) as s:
        runs = s.execute(
            sa.select(
                ops_job_runs.c.job,
                ops_job_runs.c.outcome,
                ops_job_runs.c.counts,
                ops_job_runs.c.run_now,
            )
        ).all()
    assert [(r.job, r.outcome) for r in runs] == [("presence-cleanup", "ok")]
    assert runs[0].counts == {
        "marked_offline": 2,
        "cleared_wait_time": 2,
        "cleared_no_call": 3,
        "online_after": 8,
        "held_by_another_session": 0,
    }
    assert runs[0].run_now == NOW


def test_human_output_names_the_counts(cli, people: dict[str, int]) -> None:
    result = cli("--now", NOW.isoformat(), "presence", "cleanup")
    assert result.exit_code == 0
    assert " marked_offline=2 " in result.stdout
    assert " cleared_no_call=3 " in result.stdout


def test_a_caller_whose_wait_time_ran_out_on_a_call_is_left_to_call_cleanup(
    cli, engine: Engine
) -> None:
    """SPEC §7: presence clears busy flags only off any ongoing call. Under cron presence
    cleanup and call cleanup fire in the same minute; presence first must leave the caller's
    wait_time <= 0, call cleanup's signal, so that the call still ends as wait_time_up."""
    with transaction(engine) as s:
        caller = add_user(s, balance=1000, online=True, last_seen=NOW, busy=True, wait_time=0)
        listener = add_user(s, role="listener", online=True, last_seen=NOW, busy=True)
        off_call = add_user(s, online=True, last_seen=NOW, busy=True, wait_time=-2)
        call = add_call(s, caller, listener, start=NOW - timedelta(minutes=4), coins_spent=50)
        s.commit()

    result = cli("--now", NOW.isoformat(), "--json", "presence", "cleanup")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)["report"]
    assert (report["wait_time_ids"], report["no_call_ids"]) == ([off_call], [])
    after = _statuses(engine)
    assert after[caller] == (True, True, 0)
    assert after[listener] == (True, True, None)
    assert after[off_call] == (True, False, None)

    result = cli("--now", NOW.isoformat(), "--json", "calls", "cleanup")
    assert result.exit_code == 0, result.stderr
    (ended,) = json.loads(result.stdout)["report"]["ended"]
    assert (ended["call_id"], ended["reasons"]) == (call, ["wait_time_up"])
    after = _statuses(engine)
    assert after[caller] == (True, False, None)
    assert after[listener] == (True, False, None)
