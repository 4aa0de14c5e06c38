"""Time `status` on PostgreSQL with a large database.

    python -m benchmarks.bench_status postgresql://postgres@127.0.0.1:5432/postgres --users 1000000

Creates a scratch database on that server (dropped afterwards unless --keep),
fills it by set-based inserts with N users (a quarter listeners) with wallets
(0.1% in debt) and presence (10% online), N/50 ongoing calls, two finished
calls per user over the last week, badges, and a week of job runs (one
coins-deduct run a minute), then times `status`: the service a few times with
each statement's time, and the whole command once. Not a test: nothing here
asserts a time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.scratch import fill, scratch_database
from saathii_ops.settings import Settings
from saathii_ops.status import collect as status

NOW = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)

FILL = """
INSERT INTO users (user_id, username, dob, phone)
SELECT g, 'b' || g, DATE '1995-05-05', '+91' || g FROM generate_series(1, :n) g;
INSERT INTO user_roles (user_id, role)
SELECT g, CASE WHEN g % 4 = 0 THEN 'listener' ELSE 'customer' END
FROM generate_series(1, :n) g;
INSERT INTO user_wallets (user_id, balance_coins, withdrawable_money)
SELECT g, CASE WHEN g % 1000 = 1 THEN -10 ELSE 5000 END, 0 FROM generate_series(1, :n) g;
INSERT INTO user_status (user_id, is_online, last_seen, is_busy, wait_time)
SELECT g, g % 10 = 0, CAST(:now AS timestamptz) - make_interval(secs => g % 3600),
       g % 20 = 0, CASE WHEN g % 20 = 0 THEN 30 END
FROM generate_series(1, :n) g;
-- ongoing: caller 4k+1, listener 4k+4, e seconds long, billed up to now
INSERT INTO user_calls (user_id, listener_id, call_type, start_time, coins_spent, status)
SELECT 4 * g + 1, 4 * g + 4, CASE WHEN g % 5 = 0 THEN 'video' ELSE 'audio' END,
       CAST(:now AS timestamptz) - make_interval(secs => e),
       CASE WHEN g % 5 = 0 THEN 60 ELSE 10 END * (1 + e / 60), 'ongoing'
FROM generate_series(0, :n / 50 - 1) g, LATERAL (SELECT 30 + (g * 7919) % 3000 AS e) elapsed;
-- finished: two a user over the past week
INSERT INTO user_calls (user_id, listener_id, call_type, start_time, end_time,
                        duration_minutes, coins_spent, status)
SELECT g % :n + 1, 4 * (g % (:n / 4)) + 4, 'audio',
       CAST(:now AS timestamptz) - make_interval(secs => 600 + (CAST(g AS bigint) * 7919) % 604800),
       CAST(:now AS timestamptz) - make_interval(secs => (CAST(g AS bigint) * 7919) % 604800),
       10, 100, CASE WHEN g % 10 = 0 THEN 'dropped' ELSE 'completed' END
FROM generate_series(1, 2 * :n) g;
INSERT INTO listener_badges (listener_id, date, badge, audio_rate_per_minute,
                             video_rate_per_minute)
SELECT user_id, d, 'basic', 1.00, 6.00
FROM user_roles, (VALUES (DATE '2026-11-28'), (DATE '2026-11-29')) days(d)
WHERE role = 'listener' AND (d = DATE '2026-11-28' OR user_id % 8 = 0);
INSERT INTO ops_job_runs (job, started_at, finished_at, outcome, counts, host, run_now)
SELECT 'coins-deduct', t, t + interval '2 seconds', 'ok', '{"calls_charged": 1}', 'bench', t
FROM generate_series(CAST(:now AS timestamptz) - interval '7 days', CAST(:now AS timestamptz),
                     interval '1 minute') t;
INSERT INTO ops_job_runs (job, started_at, finished_at, outcome, host, run_now)
SELECT j, t, t + interval '1 second', 'ok', 'bench', t
FROM (VALUES ('calls-cleanup'), ('presence-cleanup')) jobs(j),
     generate_series(CAST(:now AS timestamptz) - interval '7 days', CAST(:now AS timestamptz),
                     interval '5 minutes') t;
SELECT setval('users_user_id_seq', :n);
ANALYZE;
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server_url", help="a PostgreSQL URL of the server (any database)")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    with scratch_database(args.server_url, "saathii_bench_status", keep=args.keep) as (engine, url):
        seconds = fill(engine, FILL, {"n": args.users, "now": NOW})
        with engine.connect() as conn:
            rows = {
                table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("users", "user_calls", "listener_badges", "ops_job_runs")
            }
        print(
            f"filled in {seconds:.0f} s: "
            + ", ".join(f"{table} {count}" for table, count in rows.items())
        )

        statements: dict[str, list[float]] = defaultdict(list)

        @sa.event.listens_for(engine, "before_cursor_execute")
        def _before(conn: Any, cursor: Any, sql: str, *_: Any) -> None:
            conn.info["started"] = time.monotonic()

        @sa.event.listens_for(engine, "after_cursor_execute")
        def _after(conn: Any, cursor: Any, sql: str, *_: Any) -> None:
            statements[f"{' '.join(sql.split())[:80]} [{len(sql)}]"].append(
                time.monotonic() - conn.info.pop("started")
            )

        settings = Settings(server_timezone="UTC")
        times = []
        for _ in range(args.repeat):
            started = time.monotonic()
            report = status.collect(engine, settings, now=NOW, crontab=None)
            times.append(time.monotonic() - started)
        print(
            f"status.collect: median {statistics.median(times):.3f} s, "
            f"min {min(times):.3f} s over {args.repeat} runs; healthy={report.healthy}"
        )
        print(f"  data: {report.data}")
        for sql, spent in sorted(statements.items(), key=lambda item: -sum(item[1])):
            print(f"  {statistics.median(spent) * 1000:8.1f} ms  {sql}")

        cli = str(Path(sys.executable).parent / "saathii-ops")
        database = url.render_as_string(False)
        argv = [cli, "--database-url", database, "--now", NOW.isoformat(), "status", "--json"]
        started = time.monotonic()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=False)
        print(f"saathii-ops status --json (a new process): {time.monotonic() - started:.2f} s")


if __name__ == "__main__":
    main()
