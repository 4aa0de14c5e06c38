"""A realistic population at benchmark scale, built by set-based SQL on PostgreSQL.

`saathii_ops.demo.sample_data` builds its rows in Python, one dict per row: right for the
demo and the tests, minutes and gigabytes at a million users. This builds the same
kind of data with `INSERT … SELECT … FROM generate_series`, deterministic for a
scale and a "now":

- per ongoing call: 3 users (its listener, its caller, one user not on a call) and
  3 past calls of yesterday (business date) for its listener (`past_calls` each);
- every caller on one call (a shared balance is the plan's rare path, tested apart);
  callers billed up to now, every sixth a few minutes behind (unless not `behind`); 2% of
  them with 0 to 15 coins left, the others with 300 to 5300;
- `short` (the settlement-heavy population of issue 23): every `short`-th caller also has
  less than 7 minutes of its call's coins (0 to 69, video 0 to 419), so that a 7-minute
  catch-up ends that call; with `short=7`, 5 past calls and the rest as above, 16.5% of
  the calls end in a 7-minute catch-up (about one in six);
- every balance backed by the ledger (a purchase, the spend so far; listeners' rupees
  by an earn row), so that the audit finds nothing;
- a third of the listeners with a 'silver' listener_badges row for today (the rate
  of their calls' settlement);
- presence: both parties of every call online and busy; a tenth of the other users
  online but silent for 30 minutes, a fortieth busy off any call;
- `expired` (call cleanup): that share of the calls has expired, by turns a silent
  caller, a silent listener, a wait_time run out, a call past the longest limit.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

FILL = """
-- listeners 1..n, callers n+1..2n, users not on a call 2n+1..3n
INSERT INTO users (user_id, username, sex, dob, phone, preferred_language, created_at,
                   updated_at)
SELECT g, 'u' || g, CASE WHEN g % 2 = 0 THEN 'female' ELSE 'male' END,
       DATE '1990-01-01' + (g % 9000), '+91' || lpad(g::text, 10, '0'), 'Hindi',
       :now - interval '30 days', :now
FROM generate_series(1, 3 * :n) g;
INSERT INTO user_roles (user_id, role, assigned_at)
SELECT g, CASE WHEN g <= :n THEN 'listener' ELSE 'customer' END, :now - interval '30 days'
FROM generate_series(1, 3 * :n) g;

CREATE TEMP TABLE ongoing AS
SELECT i AS call_id, :n + i AS caller, i AS listener,
       CASE WHEN i % 5 = 0 THEN 'video' ELSE 'audio' END AS call_type,
       CASE WHEN i % 5 = 0 THEN 60 ELSE 10 END AS rate,
       CASE WHEN :every > 0 AND i % greatest(:every, 1) = 3
            THEN (i / greatest(:every, 1)) % 4 END AS expiry,
       20 + (i::bigint * 7919) % 2400 AS elapsed
FROM generate_series(1, :n) i;
-- the longest-call expiry: 250 minutes, paid up
UPDATE ongoing SET elapsed = 250 * 60 + elapsed % 60 WHERE expiry = 3;
ALTER TABLE ongoing ADD COLUMN spent bigint;
UPDATE ongoing SET spent = rate * greatest(1, elapsed / 60 + 1
    - CASE WHEN :behind AND call_id % 6 = 0 THEN 1 + call_id % 7 ELSE 0 END);

INSERT INTO user_calls (call_id, user_id, listener_id, call_type, start_time, coins_spent,
                        listener_money_earned, status, created_at, updated_at)
SELECT call_id, caller, listener, call_type, :now - make_interval(secs => elapsed), spent, 0,
       'ongoing', :now - make_interval(secs => elapsed), :now
FROM ongoing;
-- yesterday's calls (business date), k per listener, 1 to 19 minutes each, by customers
INSERT INTO user_calls (call_id, user_id, listener_id, call_type, start_time, end_time,
                        duration_seconds, duration_minutes, coins_spent,
                        listener_money_earned, status, created_at, updated_at)
SELECT :n + (l - 1) * :k + j, :n + 1 + (l * 7 + j) % (2 * :n), l,
       CASE WHEN (l + j) % 5 = 0 THEN 'video' ELSE 'audio' END,
       :day_start + make_interval(mins => j * 60 + l % 40),
       :day_start + make_interval(mins => j * 60 + l % 40 + 1 + (l + j) % 19),
       60 * (1 + (l + j) % 19), 1 + (l + j) % 19,
       CASE WHEN (l + j) % 5 = 0 THEN 60 ELSE 10 END * (1 + (l + j) % 19),
       1 + (l + j) % 19,
       CASE WHEN j % 7 = 0 THEN 'dropped' ELSE 'completed' END,
       :day_start + make_interval(mins => j * 60), :day_start + make_interval(mins => j * 60)
FROM generate_series(1, :n) l, generate_series(1, :k) j;
SELECT setval(pg_get_serial_sequence('user_calls', 'call_id'), :n + :n * :k);

-- what each user spent (calls made) and earned (rupees, basic rates)
CREATE TEMP TABLE money AS
SELECT u AS user_id, coalesce(s.spent, 0) AS spent, coalesce(e.earned, 0) AS earned
FROM generate_series(1, 3 * :n) u
LEFT JOIN (SELECT user_id, sum(coins_spent) AS spent FROM user_calls GROUP BY user_id) s
       ON s.user_id = u
LEFT JOIN (SELECT listener_id, sum(listener_money_earned)::numeric(12, 2) AS earned
           FROM user_calls WHERE status <> 'ongoing' GROUP BY listener_id) e
       ON e.listener_id = u;
INSERT INTO user_wallets (wallet_id, user_id, balance_coins, withdrawable_money, created_at,
                          updated_at)
SELECT user_id, user_id,
       CASE WHEN user_id <= :n THEN 0
            -- short: less than 7 minutes of its call (caller n + i is on call i, video when
            -- i % 5 = 0), so that a 7-minute catch-up ends the call
            WHEN :short > 0 AND user_id > :n AND user_id <= 2 * :n
                 AND (user_id - :n) % greatest(:short, 1) = 1
            THEN ((user_id - :n) * 7919) % CASE WHEN (user_id - :n) % 5 = 0 THEN 420 ELSE 70 END
            WHEN user_id <= 2 * :n AND user_id % 50 = 0 THEN user_id % 16
            ELSE 300 + (user_id * 37) % 5000 END,
       earned, :now - interval '30 days', :now
FROM money;
SELECT setval(pg_get_serial_sequence('user_wallets', 'wallet_id'), 3 * :n);
INSERT INTO user_transactions (wallet_id, tx_type, coins_change, money_change, created_at,
                               updated_at)
SELECT w.user_id, 'purchase', w.balance_coins + m.spent, 99.00, :now - interval '2 days',
       :now - interval '2 days'
FROM user_wallets w JOIN money m USING (user_id) WHERE w.balance_coins + m.spent > 0
UNION ALL
SELECT user_id, 'spend', -spent, 0, :now, :now FROM money WHERE spent > 0
UNION ALL
SELECT user_id, 'earn', 0, earned, :now - interval '1 day', :now - interval '1 day'
FROM money WHERE earned > 0;

INSERT INTO user_status (user_id, is_online, last_seen, is_busy, wait_time, is_active,
                         created_at, updated_at)
SELECT g,
       g <= 2 * :n OR g % 10 = 0 OR g % 3 = 0,
       :now - CASE WHEN g > 2 * :n AND g % 10 = 0 THEN interval '30 minutes'
                   ELSE interval '20 seconds' END,
       g <= 2 * :n OR g % 40 = 0,
       CASE WHEN g > :n AND g <= 2 * :n THEN 30 WHEN g > 2 * :n AND g % 80 = 0 THEN 0 END,
       TRUE, :now - interval '30 days', :now
FROM generate_series(1, 3 * :n) g;
-- the expiries of call cleanup
UPDATE user_status s SET last_seen = :now - interval '15 minutes'
FROM ongoing o WHERE o.expiry = 0 AND s.user_id = o.caller;
UPDATE user_status s SET last_seen = :now - interval '15 minutes'
FROM ongoing o WHERE o.expiry = 1 AND s.user_id = o.listener;
UPDATE user_status s SET wait_time = 0
FROM ongoing o WHERE o.expiry = 2 AND s.user_id = o.caller;

INSERT INTO listener_badges (listener_id, date, badge, audio_rate_per_minute,
                             video_rate_per_minute, assigned_at, created_at, updated_at)
SELECT l, :today, 'silver', 1.50, 8.50, :now, :now, :now
FROM generate_series(3, :n, 3) l;
SELECT setval(pg_get_serial_sequence('users', 'user_id'), 3 * :n);
DROP TABLE ongoing;
DROP TABLE money;
"""


def fill(
    engine: Engine,
    now: datetime,
    *,
    ongoing: int,
    past_calls: int = 3,
    expired: float = 0.0,
    behind: bool = True,
    short: int = 0,
    timezone: str = "Asia/Kolkata",
) -> None:
    """`ongoing` calls and their population (see the module), then VACUUM ANALYZE."""
    tz = ZoneInfo(timezone)
    today = now.astimezone(tz).date()
    params: dict[str, Any] = {
        "n": ongoing,
        "k": past_calls,
        "now": now,
        "today": today,
        "day_start": datetime.combine(today - timedelta(days=1), time(), tz),
        "every": round(1 / expired) if expired else 0,
        "behind": behind,
        "short": short,
    }
    with engine.begin() as conn:
        for statement in FILL.split(";"):
            if statement.strip():
                conn.execute(sa.text(statement), params)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
