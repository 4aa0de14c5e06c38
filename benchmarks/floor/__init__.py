"""The floor: for each job, the fewest hand-written SQL statements that make the same
change on the benchmark's population (PostgreSQL, run with psql: `psql -v now=… -f`)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).parent
TZ = ZoneInfo("Asia/Kolkata")

STALE = "interval '10 minutes'"
# call cleanup's end rules (SPEC §6), on the call `c`
EXPIRED = f"""AND (EXISTS (SELECT FROM user_status s WHERE s.user_id = c.user_id
                        AND (s.last_seen < :'now'::timestamptz - {STALE} OR s.wait_time <= 0))
         OR EXISTS (SELECT FROM user_status s WHERE s.user_id = c.listener_id
                        AND s.last_seen < :'now'::timestamptz - {STALE})
         OR extract(epoch FROM :'now'::timestamptz - c.start_time) > 240 * 60)"""


def sql(job: str) -> str:
    if job == "coins-deduct":
        return _billing(job, scope="", ends="b.charge < b.owed")
    if job == "calls-cleanup":
        return _billing(job, scope=EXPIRED, ends="TRUE")
    return (HERE / f"{job}.sql").read_text()


def _billing(job: str, *, scope: str, ends: str) -> str:
    return (HERE / "billing.sql.in").read_text().format(job=job, scope=scope, ends=ends)


def variables(job: str, now: datetime) -> dict[str, str]:
    values = {"now": now.isoformat()}
    if job == "badges-assign":
        day = now.astimezone(TZ).date()
        yesterday = day - timedelta(days=1)
        values["day"] = day.isoformat()
        values["from"] = datetime.combine(yesterday, time(), TZ).isoformat()
        values["to"] = datetime.combine(day, time(), TZ).isoformat()
    return values
