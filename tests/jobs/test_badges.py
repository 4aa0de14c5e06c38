"""Badge assignment and listing (SPEC §8), through the service and the CLI.

The badge date D is 2026-11-29; its minutes are those of 2026-11-28 in
Asia/Kolkata (UTC+05:30), i.e. calls starting in [2026-11-27 18:30, 2026-11-28 18:30) UTC.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.db.tables import listener_badges, ops_job_runs, user_roles, user_status
from saathii_ops.jobs import badges
from saathii_ops.jobs.badges import AssignOptions
from saathii_ops.runtime.registry import JOBS, get_job
from saathii_ops.settings import BadgeThresholds, Settings
from tests.conftest import Cli
from tests.factories import add_badge, add_call, add_user, run_context
from tests.support.badges import NOW, D, add_listener, ist
from tests.support.schema import create_app_tables

RATES = {
    "basic": (Decimal("1.00"), Decimal("6.00")),
    "bronze": (Decimal("1.25"), Decimal("7.00")),
    "silver": (Decimal("1.50"), Decimal("8.50")),
    "gold": (Decimal("1.80"), Decimal("10.00")),
}


def rows(engine: Engine) -> dict[tuple[int, date], tuple[str, Decimal, Decimal]]:
    with transaction(engine) as s:
        found = s.execute(
            sa.select(
                listener_badges.c.listener_id,
                listener_badges.c.date,
                listener_badges.c.badge,
                listener_badges.c.audio_rate_per_minute,
                listener_badges.c.video_rate_per_minute,
            )
        ).all()
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in found}


def with_rates(badge: str) -> tuple[str, Decimal, Decimal]:
    return (badge, *RATES[badge])


def run(cli: Cli, *args: str, now: datetime = NOW) -> dict:
    result = cli("--now", now.isoformat(), "--json", "badges", "assign", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


# --- the badge table --------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "badge"),
    [
        (0, "basic"),
        (59, "basic"),
        (60, "bronze"),
        (119, "bronze"),
        (120, "silver"),
        (179, "silver"),
        (180, "gold"),
        (10_000, "gold"),
    ],
)
def test_badge_for_minutes_with_the_default_thresholds(minutes: int, badge: str) -> None:
    assert badges.badge_for_minutes(minutes, BadgeThresholds()) == badge


def test_badge_for_minutes_with_equal_thresholds_gives_the_higher_badge() -> None:
    thresholds = BadgeThresholds(bronze=60, silver=60, gold=61)
    assert [badges.badge_for_minutes(m, thresholds) for m in (59, 60, 61)] == [
        "basic",
        "silver",
        "gold",
    ]


def test_business_day_is_the_utc_span_of_the_local_day() -> None:
    assert badges.business_day(date(2026, 11, 28), Settings()) == (
        datetime(2026, 11, 27, 18, 30, tzinfo=UTC),
        datetime(2026, 11, 28, 18, 30, tzinfo=UTC),
    )
    # a day of 23 hours where the clocks go forward
    new_york = Settings(timezone="America/New_York")
    assert badges.business_day(date(2026, 3, 8), new_york) == (
        datetime(2026, 3, 8, 5, 0, tzinfo=UTC),
        datetime(2026, 3, 9, 4, 0, tzinfo=UTC),
    )


# --- assignment -------------------------------------------------------------------


def test_threshold_edges_give_the_spec_badges_and_rates(cli: Cli, engine: Engine) -> None:
    with transaction(engine) as s:
        # split over two calls each: the minutes are a sum
        edges = {m: add_listener(s, m // 2, m - m // 2) for m in (59, 60, 119, 120, 179, 180)}
        idle = add_listener(s)
        s.commit()

    doc = run(cli, "--date", "2026-11-29")

    expected = {
        edges[59]: "basic",
        edges[60]: "bronze",
        edges[119]: "bronze",
        edges[120]: "silver",
        edges[179]: "silver",
        edges[180]: "gold",
        idle: "basic",
    }
    assert rows(engine) == {(lid, D): with_rates(badge) for lid, badge in expected.items()}
    report = doc["report"]
    assert report["dates"] == ["2026-11-29"]
    assert [
        (a["listener_id"], a["previous_day_minutes"], a["badge"]) for a in report["assignments"]
    ] == [
        (edges[59], 59, "basic"),
        (edges[60], 60, "bronze"),
        (edges[119], 119, "bronze"),
        (edges[120], 120, "silver"),
        (edges[179], 179, "silver"),
        (edges[180], 180, "gold"),
        (idle, 0, "basic"),
    ]
    assert report["assignments"][5]["audio_rate_per_minute"] == "1.80"
    assert report["assignments"][5]["video_rate_per_minute"] == "10.00"
    assert (report["gold"], report["silver"], report["bronze"], report["basic"]) == (1, 2, 2, 2)
    assert (report["total"], report["replaced"]) == (7, 0)


def test_the_report_shows_thresholds_statuses_and_rates(cli: Cli, engine: Engine) -> None:
    with transaction(engine) as s:
        add_listener(s, 130)
        s.commit()
    result = cli("--now", NOW.isoformat(), "badges", "assign")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert out.startswith("job=badges-assign outcome=ok exit_code=0 ")
    assert " dates=2026-11-29 " in out
    assert ' counted_statuses="completed, dropped" ' in out
    for line in (
        "  badge_table badge=gold least_minutes=180 audio_rate_per_minute=1.80 "
        "video_rate_per_minute=10.00\n",
        "  badge_table badge=silver least_minutes=120 audio_rate_per_minute=1.50 "
        "video_rate_per_minute=8.50\n",
        "  badge_table badge=bronze least_minutes=60 audio_rate_per_minute=1.25 "
        "video_rate_per_minute=7.00\n",
        "  badge_table badge=basic least_minutes=0 audio_rate_per_minute=1.00 "
        "video_rate_per_minute=6.00\n",
    ):
        assert line in out
    assert " silver=1 " in out and " total=1 " in out


def test_configured_thresholds_and_rates_are_honoured(
    cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    # the app code's old thresholds: 3, 6 and 9 hours
    config = tmp_path / "ops.toml"
    config.write_text(
        "[badge_thresholds]\nbronze = 180\nsilver = 360\ngold = 540\n"
        '[badge_rates]\ngold = { audio = "2.00", video = "12.50" }\n'
    )
    with transaction(engine) as s:
        by_minutes = {m: add_listener(s, m) for m in (179, 180, 359, 360, 539, 540)}
        s.commit()

    result = cli("--config", str(config), "--now", NOW.isoformat(), "--json", "badges", "assign")
    assert result.exit_code == 0, result.stderr

    assert rows(engine) == {
        (by_minutes[179], D): with_rates("basic"),
        (by_minutes[180], D): with_rates("bronze"),
        (by_minutes[359], D): with_rates("bronze"),
        (by_minutes[360], D): with_rates("silver"),
        (by_minutes[539], D): with_rates("silver"),
        (by_minutes[540], D): ("gold", Decimal("2.00"), Decimal("12.50")),
    }
    table = json.loads(result.stdout)["report"]["badge_table"]
    assert [(r["badge"], r["least_minutes"]) for r in table] == [
        ("gold", 540),
        ("silver", 360),
        ("bronze", 180),
        ("basic", 0),
    ]


def test_a_threshold_from_the_environment_is_honoured(
    cli: Cli, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with transaction(engine) as s:
        at_180 = add_listener(s, 180)
        at_200 = add_listener(s, 200)
        s.commit()
    monkeypatch.setenv("SAATHII_BADGE_THRESHOLDS__GOLD", "200")
    run(cli)
    assert rows(engine) == {(at_180, D): with_rates("silver"), (at_200, D): with_rates("gold")}


def test_a_call_belongs_to_the_business_day_it_starts_on(cli: Cli, engine: Engine) -> None:
    day_27, day_28, day_29 = date(2026, 11, 27), date(2026, 11, 28), date(2026, 11, 29)
    with transaction(engine) as s:
        caller = add_user(s)
        starts = {
            "late_27": ist(day_27, 23, 59, 59),  # 2026-11-27 18:29:59 UTC
            "first_second_28": ist(day_28, 0, 0),  # 2026-11-27 18:30:00 UTC
            "late_28": ist(day_28, 23, 50),  # 2026-11-28 18:20 UTC
            "early_29": ist(day_29, 0, 10),  # 2026-11-28 18:40 UTC: still the 28th in UTC
        }
        listeners = {}
        for name, start in starts.items():
            listeners[name] = add_user(s, role="listener")
            add_call(
                s, caller, listeners[name], start=start, status="completed", duration_minutes=60
            )
        s.commit()

    doc = run(cli, "--from", "2026-11-28", "--to", "2026-11-30")

    bronze_on = {
        date(2026, 11, 28): {"late_27"},
        date(2026, 11, 29): {"first_second_28", "late_28"},
        date(2026, 11, 30): {"early_29"},
    }
    assert rows(engine) == {
        (listeners[name], day): with_rates("bronze" if name in bronze_on[day] else "basic")
        for day in bronze_on
        for name in starts
    }
    assert doc["report"]["dates"] == ["2026-11-28", "2026-11-29", "2026-11-30"]
    assert (doc["report"]["bronze"], doc["report"]["basic"], doc["report"]["total"]) == (4, 8, 12)


@pytest.fixture
def new_york_process_time() -> Iterator[None]:
    """The process's local time zone is not UTC (nor the business timezone)."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


def test_a_server_or_session_timezone_other_than_utc_does_not_move_the_day(
    db_url: str, engine: Engine, backend: str, new_york_process_time: None
) -> None:
    with transaction(engine) as s:
        caller = add_user(s)
        late_28 = add_user(s, role="listener")
        early_29 = add_user(s, role="listener")
        add_call(
            s,
            caller,
            late_28,
            start=ist(D - timedelta(1), 23, 50),
            status="completed",
            duration_minutes=60,
        )
        add_call(s, caller, early_29, start=ist(D, 0, 10), status="completed", duration_minutes=60)
        s.commit()
    expected_plan = [(late_28, "bronze"), (early_29, "basic")]

    if backend == "postgresql":
        name = sa.make_url(db_url).database
        admin = sa.create_engine(
            sa.make_url(db_url).set(drivername="postgresql+psycopg2"), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.exec_driver_sql(f"ALTER DATABASE \"{name}\" SET timezone TO 'America/New_York'")
        admin.dispose()
        # a client that does not set its own time zone now gets New York's
        raw = psycopg2.connect(sa.make_url(db_url).render_as_string(False).replace("+psycopg2", ""))
        with raw.cursor() as cursor:
            cursor.execute("SHOW timezone")
            assert cursor.fetchone() == ("America/New_York",)
        raw.close()

    # the query itself must not depend on the session's zone: set one that is not UTC
    with transaction(engine, read_only=True) as s:
        if backend == "postgresql":
            s.execute(sa.text("SET LOCAL TIME ZONE 'America/New_York'"))
            assert s.scalar(sa.text("SHOW timezone")) == "America/New_York"
        report = badges.assign(run_context(s, NOW, Settings(), apply=False))
    assert report.dates == [D]
    assert [(a.listener_id, a.badge) for a in report.assignments] == expected_plan

    doc = run(Cli(db_url))
    assert doc["report"]["dates"] == ["2026-11-29"]
    assert rows(engine) == {
        (late_28, D): with_rates("bronze"),
        (early_29, D): with_rates("basic"),
    }


def test_only_counted_statuses_count_and_ongoing_calls_do_not(engine: Engine) -> None:
    day = D - timedelta(days=1)
    with transaction(engine) as s:
        caller = add_user(s)
        mixed = add_user(s, role="listener")
        add_call(s, caller, mixed, start=ist(day, 8, 0), status="completed", duration_minutes=30)
        add_call(s, caller, mixed, start=ist(day, 9, 0), status="dropped", duration_minutes=30)
        add_call(s, caller, mixed, start=ist(day, 10, 0), status="ongoing", duration_minutes=100)
        only_ongoing = add_user(s, role="listener")
        add_call(
            s, caller, only_ongoing, start=ist(day, 8, 0), status="ongoing", duration_minutes=200
        )
        unknown_length = add_user(s, role="listener")
        add_call(s, caller, unknown_length, start=ist(day, 8, 0), status="completed")
        add_call(
            s, caller, unknown_length, start=ist(day, 9, 0), status="completed", duration_minutes=59
        )
        s.commit()

    def minutes(settings: Settings) -> dict[int, tuple[int, str]]:
        with transaction(engine, read_only=True) as s:
            report = badges.assign(run_context(s, NOW, settings, apply=False))
        return {a.listener_id: (a.previous_day_minutes, a.badge) for a in report.assignments}

    # completed 30 + dropped 30; the ongoing call's 100 do not count; NULL minutes are 0
    assert minutes(Settings()) == {
        mixed: (60, "bronze"),
        only_ongoing: (0, "basic"),
        unknown_length: (59, "basic"),
    }
    assert minutes(Settings(counted_call_statuses=("completed",))) == {
        mixed: (30, "basic"),
        only_ongoing: (0, "basic"),
        unknown_length: (59, "basic"),
    }


def test_inactive_accounts_get_no_new_badge_and_others_do(cli: Cli, engine: Engine) -> None:
    with transaction(engine) as s:
        inactive = add_listener(s, 200, online=False, active=False)
        add_badge(s, inactive, D, "basic", "1.00", "6.00")  # the app's row is left alone
        active = add_listener(s, 200, online=False, active=True)
        no_status_row = add_listener(s, 200)
        null_flag = add_listener(s, 200, online=False)
        s.execute(
            sa.update(user_status).where(user_status.c.user_id == null_flag).values(is_active=None)
        )
        customer = add_user(s, online=False)
        both_roles = add_listener(s, 70)
        s.execute(sa.insert(user_roles).values(user_id=both_roles, role="customer"))
        s.commit()

    doc = run(cli)

    assert rows(engine) == {
        (inactive, D): with_rates("basic"),
        (active, D): with_rates("gold"),
        (no_status_row, D): with_rates("gold"),
        (null_flag, D): with_rates("gold"),
        (both_roles, D): with_rates("bronze"),
    }
    assert customer not in {a["listener_id"] for a in doc["report"]["assignments"]}
    assert doc["report"]["total"] == 4


def test_rerunning_replaces_rows_and_never_duplicates(cli: Cli, engine: Engine) -> None:
    app_wrote_at = datetime(2026, 11, 28, 18, 30, 5, tzinfo=UTC)
    with transaction(engine) as s:
        gold = add_listener(s, 200)
        bronze = add_listener(s, 61)
        # the app wrote a 'basic' row for D when it first saw the gold listener today
        s.execute(
            sa.insert(listener_badges).values(
                listener_id=gold,
                date=D,
                badge="basic",
                audio_rate_per_minute=Decimal("1.00"),
                video_rate_per_minute=Decimal("6.00"),
                assigned_at=app_wrote_at,
                updated_at=app_wrote_at,
                created_at=app_wrote_at,
            )
        )
        add_badge(s, gold, D - timedelta(days=1), "silver", "1.50", "8.50")  # another day
        s.commit()

    first = run(cli)["report"]
    later = NOW + timedelta(hours=2)
    second = run(cli, now=later)["report"]

    expected = {
        (gold, D): with_rates("gold"),
        (bronze, D): with_rates("bronze"),
        (gold, D - timedelta(days=1)): with_rates("silver"),
    }
    assert rows(engine) == expected
    assert [(a["listener_id"], a["replaces"]) for a in first["assignments"]] == [
        (gold, "basic"),
        (bronze, None),
    ]
    assert (first["replaced"], first["total"]) == (1, 2)
    assert [(a["listener_id"], a["replaces"]) for a in second["assignments"]] == [
        (gold, "gold"),
        (bronze, "bronze"),
    ]
    assert (second["replaced"], second["total"]) == (2, 2)
    with transaction(engine) as s:
        times = s.execute(
            sa.select(
                listener_badges.c.assigned_at,
                listener_badges.c.updated_at,
                listener_badges.c.created_at,
            ).where(listener_badges.c.listener_id == gold, listener_badges.c.date == D)
        ).one()
    assert tuple(times) == (later, later, app_wrote_at)


def test_dry_run_equals_the_real_run_and_changes_nothing(cli: Cli, engine: Engine) -> None:
    with transaction(engine) as s:
        listeners = [add_listener(s, m) for m in (0, 75, 125, 185)]
        add_badge(s, listeners[2], D, "basic", "1.00", "6.00")
        s.commit()
    before = rows(engine)

    dry = run(cli, "--from", "2026-11-28", "--to", "2026-11-29", "--dry-run")
    assert rows(engine) == before
    with transaction(engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(ops_job_runs)) == 0

    real = run(cli, "--from", "2026-11-28", "--to", "2026-11-29")
    assert dry["outcome"] == "dry-run" and real["outcome"] == "ok"
    assert dry["report"] == real["report"]
    assert real["report"]["total"] == 8 and real["report"]["replaced"] == 1
    assert rows(engine)[(listeners[2], D)] == with_rates("silver")
    with transaction(engine) as s:
        runs = s.execute(
            sa.select(ops_job_runs.c.job, ops_job_runs.c.outcome, ops_job_runs.c.counts)
        ).all()
    # a backfill is one run
    assert [tuple(r) for r in runs] == [
        (
            "badges-assign",
            "ok",
            {"gold": 1, "silver": 1, "bronze": 1, "basic": 5, "total": 8, "replaced": 1},
        )
    ]


def test_the_default_date_is_today_in_the_business_timezone(cli: Cli, engine: Engine) -> None:
    with transaction(engine) as s:
        add_listener(s, 90)
        s.commit()
    before_midnight = run(cli, "--dry-run", now=datetime(2026, 11, 28, 18, 29, 59, tzinfo=UTC))
    after_midnight = run(cli, "--dry-run", now=datetime(2026, 11, 28, 18, 30, tzinfo=UTC))
    assert before_midnight["report"]["dates"] == ["2026-11-28"]
    assert after_midnight["report"]["dates"] == ["2026-11-29"]
    assert after_midnight["report"]["bronze"] == 1


def test_the_registered_job_assigns_today_and_reports_each_date(engine: Engine) -> None:
    job = get_job("badges-assign")
    assert (job.command, job.schedule, job.business_time) == ("badges assign", "1 0 * * *", True)
    assert [j.name for j in JOBS].index("badges-assign") == [j.name for j in JOBS].index(
        "presence-cleanup"
    ) + 1
    with transaction(engine) as s:
        listener = add_listener(s, 120)
        report = job.resolve_service()(run_context(s, NOW, Settings(), apply=True))
        done: list[date] = []
        badges.assign(
            run_context(
                s,
                NOW,
                Settings(),
                apply=False,
                options=AssignOptions(dates=[D, D + timedelta(1)], on_date_done=done.append),
            )
        )
        s.commit()
    assert isinstance(report, badges.BadgesReport)
    assert report.dates == [D]
    assert rows(engine) == {(listener, D): with_rates("silver")}
    assert done == [D, D + timedelta(1)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "2026-11-29", "--from", "2026-11-01", "--to", "2026-11-02"], "not both"),
        (["--from", "2026-11-03", "--to", "2026-11-02"], "--from 2026-11-03 is after --to"),
        (["--from", "2026-11-03"], "--from and --to go together"),
        (["--date", "29/11/2026"], "does not match the formats '%Y-%m-%d'"),
    ],
)
def test_bad_dates_are_usage_errors(args: list[str], message: str) -> None:
    result = Cli(None)("badges", "assign", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


# --- listing ----------------------------------------------------------------------


def test_show_lists_a_dates_badges(cli: Cli, engine: Engine) -> None:
    with transaction(engine) as s:
        silver = add_listener(s, 150)
        basic = add_listener(s, 5)
        add_badge(s, silver, D + timedelta(days=1), "gold", "1.80", "10.00")
        s.commit()
    run(cli)

    shown = cli("--now", NOW.isoformat(), "--json", "badges", "show")
    assert shown.exit_code == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["date"] == "2026-11-29"
    assert (doc["silver"], doc["basic"], doc["total"]) == (1, 1, 2)
    assert doc["badges"] == [
        {
            "listener_id": silver,
            "badge": "silver",
            "audio_rate_per_minute": "1.50",
            "video_rate_per_minute": "8.50",
            "assigned_at": "2026-11-28T18:31:00+00:00",
        },
        {
            "listener_id": basic,
            "badge": "basic",
            "audio_rate_per_minute": "1.00",
            "video_rate_per_minute": "6.00",
            "assigned_at": "2026-11-28T18:31:00+00:00",
        },
    ]

    one = json.loads(
        cli("badges", "show", "--date", "2026-11-30", "--listener", str(silver), "--json").stdout
    )
    assert [(r["listener_id"], r["badge"]) for r in one["badges"]] == [(silver, "gold")]

    human = cli("badges", "show", "--date", "2026-11-29")
    assert human.exit_code == 0
    assert "listener badges for 2026-11-29" in human.stdout
    assert (
        f"listener_id={silver}  badge=silver  audio_rate_per_minute=1.50  "
        "video_rate_per_minute=8.50" in human.stdout
    )


def test_show_on_a_database_without_the_schema_is_exit_3(empty_db_url: str) -> None:
    result = Cli(empty_db_url)("badges", "show")
    assert result.exit_code == 3
    assert "run `saathii-ops db upgrade`" in result.stderr


# --- must show: the app's own database --------------------------------------------


def test_on_an_adopted_app_database_every_active_listener_gets_the_badge_earned(
    empty_db_url: str, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("the app's DDL is PostgreSQL")
    create_app_tables(empty_db_url, backend)  # the app's own DDL, plus one user
    cli = Cli(empty_db_url)
    assert cli("db", "adopt").exit_code == 0
    assert cli("db", "upgrade").exit_code == 0

    engine = sa.create_engine(sa.make_url(empty_db_url))
    # user 1, asha, is the caller
    minutes = {"lata": 0, "mira": 59, "nina": 60, "deepa": 150, "esha": 179, "farah": 181}
    with engine.begin() as conn:
        for name, total in minutes.items():
            listener = conn.execute(
                sa.text(
                    "INSERT INTO users (username, dob, phone) VALUES (:n, '1995-05-05', :p) "
                    "RETURNING user_id"
                ),
                {"n": name, "p": f"+91{name}"},
            ).scalar_one()
            conn.execute(
                sa.text("INSERT INTO user_roles (user_id, role) VALUES (:u, 'listener')"),
                {"u": listener},
            )
            for n, length in enumerate((total // 2, total - total // 2)):
                conn.execute(
                    sa.text(
                        "INSERT INTO user_calls (user_id, listener_id, call_type, start_time, "
                        "duration_minutes, status) VALUES (1, :l, 'audio', :start, :m, 'completed')"
                    ),
                    {"l": listener, "start": ist(date(2026, 11, 28), 11 + n, 0), "m": length},
                )
        # the app already wrote 'basic' for deepa today; gita's account is inactive
        conn.execute(
            sa.text(
                "INSERT INTO listener_badges (listener_id, date, badge, audio_rate_per_minute, "
                "video_rate_per_minute) SELECT user_id, '2026-11-29', 'basic', 1.00, 6.00 "
                "FROM users WHERE username = 'deepa'"
            )
        )
        gita = conn.execute(
            sa.text(
                "INSERT INTO users (username, dob, phone) VALUES ('gita', '1995-05-05', '+91g') "
                "RETURNING user_id"
            )
        ).scalar_one()
        conn.execute(
            sa.text("INSERT INTO user_roles (user_id, role) VALUES (:u, 'listener')"), {"u": gita}
        )
        conn.execute(
            sa.text("INSERT INTO user_status (user_id, is_active) VALUES (:u, false)"), {"u": gita}
        )

    result = cli("badges", "assign", "--date", "2026-11-29")
    assert result.exit_code == 0, result.stderr

    with engine.connect() as conn:
        found = conn.execute(
            sa.text(
                "SELECT u.username, b.badge, b.audio_rate_per_minute, b.video_rate_per_minute "
                "FROM listener_badges b JOIN users u ON u.user_id = b.listener_id "
                "WHERE b.date = '2026-11-29' ORDER BY u.username"
            )
        ).all()
    engine.dispose()
    assert [tuple(r) for r in found] == [
        ("deepa", *with_rates("silver")),
        ("esha", *with_rates("silver")),
        ("farah", *with_rates("gold")),
        ("lata", *with_rates("basic")),
        ("mira", *with_rates("basic")),
        ("nina", *with_rates("bronze")),
    ]


def test_people_see_the_first_rows_of_a_long_report_and_json_all(cli: Cli, engine: Engine) -> None:
    with transaction(engine) as s:
        for _ in range(52):
            add_user(s, role="listener")
        s.commit()
    human = cli("--now", NOW.isoformat(), "badges", "assign", "--dry-run")
    assert human.stdout.count("previous_day_minutes=0 badge=basic") == 50
    assert "  assignments (+2 more; --json shows all)\n" in human.stdout
    assert len(run(cli, "--dry-run")["report"]["assignments"]) == 52
