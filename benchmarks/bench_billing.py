"""Time coin deduction and call cleanup on PostgreSQL with many ongoing calls.

    python -m benchmarks.bench_billing postgresql://postgres@127.0.0.1:5432/postgres --calls 100000

Creates a scratch database on that server (dropped afterwards unless --keep),
fills it with N ongoing calls (1% of callers on a second call, 5% of callers
short of coins, some calls expired) by set-based inserts, then times one run
of each job through the job runner, a dry-run first, and how long each real run
held its row locks (from the first lock to the commit: planning comes before).
Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.scratch import fill, scratch_database
from saathii_ops.billing import locking
from saathii_ops.runtime.registry import get_job
from saathii_ops.runtime.runner import run_job
from saathii_ops.settings import Settings

NOW = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)

FILL = """
INSERT INTO users (user_id, username, dob, phone)
SELECT g, 'b' || g, DATE '1995-05-05', '+91' || g FROM generate_series(1, 2 * :n) g;
INSERT INTO user_roles (user_id, role)
SELECT g, CASE WHEN g <= :n THEN 'customer' ELSE 'listener' END FROM generate_series(1, 2 * :n) g;
-- callers 1..n (5% short of coins), listeners n+1..2n
INSERT INTO user_wallets (user_id, balance_coins, withdrawable_money)
SELECT g, CASE WHEN g <= :n THEN (CASE WHEN g % 20 = 0 THEN 5 ELSE 5000 END) ELSE 0 END, 0
FROM generate_series(1, 2 * :n) g;
INSERT INTO user_transactions (wallet_id, tx_type, coins_change)
SELECT wallet_id, 'purchase', balance_coins FROM user_wallets WHERE balance_coins > 0;
INSERT INTO user_status (user_id, is_online, last_seen, is_busy, wait_time)
SELECT g, TRUE,
       CAST(:now AS timestamptz) - CASE WHEN g % 500 = 0 THEN interval '30 minutes'
                                        ELSE interval '20 seconds' END,
       TRUE, CASE WHEN g <= :n THEN 30 END
FROM generate_series(1, 2 * :n) g;
-- call g: caller g (1% of calls by a caller already on another call), listener n+g,
-- billed up to one or two minutes ago
INSERT INTO user_calls (user_id, listener_id, call_type, start_time, coins_spent, status)
SELECT CASE WHEN g % 100 = 0 THEN g - 1 ELSE g END, :n + g,
       CASE WHEN g % 5 = 0 THEN 'video' ELSE 'audio' END,
       CAST(:now AS timestamptz) - make_interval(secs => 30 + (g * 7919) % 3000),
       CASE WHEN g % 5 = 0 THEN 60 ELSE 10 END
         * greatest(1, ((30 + (g * 7919) % 3000) / 60) - (g % 2)),
       'ongoing'
FROM generate_series(1, :n) g;
INSERT INTO listener_badges (listener_id, date, badge, audio_rate_per_minute,
                             video_rate_per_minute)
SELECT :n + g, DATE '2026-11-29', 'silver', 1.50, 8.50 FROM generate_series(1, :n, 2) g;
SELECT setval('users_user_id_seq', 2 * :n);
ANALYZE;
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server_url", help="a PostgreSQL URL of the server (any database)")
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--database", default="saathii_bench_billing", help="the scratch database")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    # the moment a run takes its first row lock, and the moment it commits
    locked_at: list[float] = []
    lock_and_replan = locking.lock_and_replan

    def timed_lock_and_replan(*args: Any, **kwargs: Any) -> int:
        locked_at.append(time.monotonic())
        return lock_and_replan(*args, **kwargs)

    locking.lock_and_replan = timed_lock_and_replan  # type: ignore[assignment]
    committed_at: list[float] = []

    with scratch_database(args.server_url, args.database, keep=args.keep) as (
        engine,
        url,
    ):
        seconds = fill(engine, FILL, {"n": args.calls, "now": NOW})
        print(f"filled {args.calls} ongoing calls in {seconds:.1f} s")

        sa.event.listen(engine, "commit", lambda _conn: committed_at.append(time.monotonic()))
        settings = Settings()
        for job_name in ("coins-deduct", "calls-cleanup"):
            job = get_job(job_name)
            for dry_run in (True, False):
                result = run_job(engine, settings, job, now=NOW, dry_run=dry_run)
                report = result.report
                assert report is not None, result.error
                counts = report.counts()
                locks = ""
                if not dry_run:
                    locks = f"(row locks held {committed_at[-1] - locked_at[-1]:.2f} s)  "
                print(
                    f"{job_name:14} {result.outcome:8} {result.duration_seconds:6.2f} s  "
                    + locks
                    + "  ".join(f"{k}={v}" for k, v in counts.items())
                )

        # the whole command, rendering a JSON document of every call it billed
        cli = str(Path(sys.executable).parent / "saathii-ops")
        argv = [cli, "--database-url", url.render_as_string(False), "--now"]
        started = time.monotonic()
        later = NOW.replace(minute=1).isoformat()
        subprocess.run(
            [*argv, later, "--json", "coins", "deduct"], check=True, stdout=subprocess.DEVNULL
        )
        print(
            f"saathii-ops coins deduct --json, a minute later: {time.monotonic() - started:.2f} s"
        )


if __name__ == "__main__":
    main()
