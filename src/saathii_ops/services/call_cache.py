"""The app's Redis call cache (SPEC §14): hash `call:{call_id}`, field `coins_spent`.

After a billing run commits, the calls it charged get their new coins_spent
and the calls it ended lose their key, in one MULTI/EXEC that also stamps
MARKER with the run's "now". Redis being down never fails or slows billing
(short timeouts; the error is reported). The next sync repairs what a failed
one missed: when MARKER is older than the last successful billing run before
this one, every ongoing call's coins_spent is written again and the keys of
the calls ended since MARKER are deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db import mask_url_text, transaction
from saathii_ops.models import JobRun, UserCall, table
from saathii_ops.reports import Report
from saathii_ops.services.billing import BillingReport
from saathii_ops.settings import Settings

log = logging.getLogger(__name__)

calls = table(UserCall)
runs = table(JobRun)

MARKER = "saathii-ops:call-cache:synced-at"
BILLING_JOBS = ("coins-deduct", "calls-cleanup")
TIMEOUT_SECONDS = 0.5


@dataclass
class CacheSync(Report):
    updated: int
    deleted: int
    repaired: bool
    error: str | None = None


def after_billing(
    engine: Engine, settings: Settings, report: Report, run_now: datetime
) -> CacheSync | None:
    """The billing jobs' after-commit step: sync the cache when a Redis URL is configured."""
    if settings.redis_url is None:
        return None
    assert isinstance(report, BillingReport)
    return sync(engine, settings.redis_url, report, run_now)


def key(call_id: int) -> str:
    return f"call:{call_id}"


def sync(engine: Engine, redis_url: str, report: BillingReport, run_now: datetime) -> CacheSync:
    """Bring the cache in line with a committed billing run; never raises."""
    client = redis.Redis.from_url(
        redis_url,
        socket_timeout=TIMEOUT_SECONDS,
        socket_connect_timeout=TIMEOUT_SECONDS,
        decode_responses=True,
    )
    try:
        stamp = client.get(MARKER)
        marker = datetime.fromisoformat(str(stamp)) if stamp is not None else None
        updates = {b.call_id: b.coins_spent for b in report.calls if b.coins_charged and not b.ends}
        ended = {b.call_id for b in report.calls if b.ends}
        repaired = _missed_a_sync(engine, marker, run_now)
        if repaired and marker is not None:
            ongoing, ended_since = _repair_sets(engine, marker)
            updates = {**ongoing, **updates}
            ended |= ended_since
        pipe = client.pipeline(transaction=True)
        for call_id, coins_spent in updates.items():
            if call_id not in ended:
                pipe.hset(key(call_id), "coins_spent", coins_spent)
        if ended:
            pipe.delete(*(key(call_id) for call_id in sorted(ended)))
        pipe.set(MARKER, run_now.isoformat())
        pipe.execute()
        return CacheSync(len(set(updates) - ended), len(ended), repaired)
    except redis.RedisError as exc:
        error = f"Redis call cache at {mask_url_text(redis_url)} not updated: {exc}"
        log.warning("%s; the next billing run repairs it", error)
        return CacheSync(0, 0, False, error)
    finally:
        client.close()


def _missed_a_sync(engine: Engine, synced_at: datetime | None, run_now: datetime) -> bool:
    """Whether an earlier billing run committed after the last successful sync."""
    if synced_at is None:
        return False  # nothing synced yet: the cache is the app's until our first run
    with transaction(engine, read_only=True) as session:
        last_run = session.scalar(
            sa.select(sa.func.max(runs.c.run_now)).where(
                runs.c.job.in_(BILLING_JOBS), runs.c.outcome == "ok", runs.c.run_now < run_now
            )
        )
    return last_run is not None and last_run > synced_at


def _repair_sets(engine: Engine, since: datetime) -> tuple[dict[int, int], set[int]]:
    with transaction(engine, read_only=True) as session:
        ongoing = dict(
            session.execute(
                sa.select(calls.c.call_id, sa.func.coalesce(calls.c.coins_spent, 0)).where(
                    calls.c.status == "ongoing"
                )
            ).all()
        )
        ended = set(
            session.scalars(
                sa.select(calls.c.call_id).where(
                    calls.c.status != "ongoing", calls.c.end_time >= since
                )
            )
        )
    return ongoing, ended
