"""Time `wallets audit` on PostgreSQL with a million wallets and two million calls.

    python -m benchmarks.bench_audit postgresql://postgres@127.0.0.1:5432/postgres

Creates a scratch database on that server (dropped afterwards unless --keep), fills
it by set-based inserts — N wallets each with a purchase (rupees in money_change), most
with a spend, every tenth with an earn in rupees; 2N calls, 1% ongoing and billed up
to now, the others ended, half of those settled by us (N rows in ops_settlements) —
plants a few findings, then times the audit through the job runner. Not a test:
nothing here asserts a time.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from benchmarks.scratch import fill, scratch_database
from saathii_ops.jobs.wallet_audit import WalletAuditReport
from saathii_ops.runtime.registry import get_job
from saathii_ops.runtime.runner import run_job
from saathii_ops.settings import Settings

NOW = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)

FILL = """
INSERT INTO users (user_id, username, dob, phone)
SELECT g, 'a' || g, DATE '1995-05-05', '+91' || g FROM generate_series(1, :n) g;
INSERT INTO user_wallets (wallet_id, user_id, balance_coins, withdrawable_money)
SELECT g, g, 1000 - 10 * (g % 50), CASE WHEN g % 10 = 0 THEN 25.50 ELSE 0 END
FROM generate_series(1, :n) g;
INSERT INTO user_transactions (wallet_id, tx_type, coins_change, money_change)
SELECT g, 'purchase', 1000, 99.00 FROM generate_series(1, :n) g;
INSERT INTO user_transactions (wallet_id, tx_type, coins_change, money_change)
SELECT g, 'spend', -10 * (g % 50), 0 FROM generate_series(1, :n) g WHERE g % 50 <> 0;
INSERT INTO user_transactions (wallet_id, tx_type, coins_change, money_change)
SELECT g, 'earn', 0, 25.50 FROM generate_series(1, :n) g WHERE g % 10 = 0;
-- 2n calls: every hundredth ongoing (e = 60 .. 659 s, billed for every started minute)
INSERT INTO user_calls (call_id, user_id, listener_id, call_type, start_time, end_time,
                        duration_seconds, duration_minutes, coins_spent,
                        listener_money_earned, status)
SELECT g, 1 + g % :n, 1 + (g * 7) % :n, 'audio',
       CAST(:now AS timestamptz) - make_interval(secs => 60 + g % 600),
       CASE WHEN g % 100 = 0 THEN NULL ELSE CAST(:now AS timestamptz) - interval '30 seconds' END,
       CASE WHEN g % 100 = 0 THEN NULL ELSE 30 + g % 600 END,
       CASE WHEN g % 100 = 0 THEN NULL ELSE greatest(1, (30 + g % 600) / 60) END,
       CASE WHEN g % 100 = 0 THEN 10 * ((60 + g % 600) / 60 + 1) ELSE 50 END,
       CASE WHEN g % 100 = 0 THEN 0 ELSE 5 END,
       CASE WHEN g % 100 = 0 THEN 'ongoing' ELSE 'dropped' END
FROM generate_series(1, 2 * :n) g;
INSERT INTO ops_settlements (call_id, run_uuid, settled_at, end_time, duration_seconds,
                             duration_minutes, coins_spent, listener_money_earned,
                             paid_minutes, rate_per_minute, earnings)
SELECT call_id, 'bench', CAST(:now AS timestamptz), end_time, duration_seconds,
       duration_minutes, coins_spent, listener_money_earned, 5, 1.00, 5.00
FROM user_calls WHERE status = 'dropped' AND call_id % 2 = 0;
-- findings: 3 wallets off, 2 settled calls ended again, 1 half-ended call
UPDATE user_wallets SET balance_coins = balance_coins + 10 WHERE wallet_id IN (7, 70, 700);
UPDATE user_calls SET status = 'completed', end_time = CAST(:now AS timestamptz)
WHERE call_id IN (2, 4);
UPDATE user_calls SET end_time = CAST(:now AS timestamptz) WHERE call_id = 100;
ANALYZE;
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server_url", help="a PostgreSQL URL of the server (any database)")
    parser.add_argument("--wallets", type=int, default=1_000_000)
    parser.add_argument("--database", default="saathii_bench_audit", help="the scratch database")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    with scratch_database(args.server_url, args.database, keep=args.keep) as (engine, _url):
        seconds = fill(engine, FILL, {"n": args.wallets, "now": NOW})
        print(f"filled {args.wallets} wallets and {2 * args.wallets} calls in {seconds:.1f} s")
        job = get_job("wallets-audit")
        for _ in range(2):  # the second run with a warm cache
            result = run_job(engine, Settings(), job, now=NOW, dry_run=False)
            report = result.report
            assert isinstance(report, WalletAuditReport), result.error
            print(
                f"wallets audit {result.outcome} in {result.duration_seconds:.2f} s: "
                + "  ".join(f"{k}={v}" for k, v in report.counts().items())
            )


if __name__ == "__main__":
    main()
