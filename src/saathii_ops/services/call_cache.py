"""The app's Redis call cache (SPEC §14): hash `call:{call_id}`, field `coins_spent`.

After a billing run commits, the calls it charged get their new coins_spent
and the calls it ended lose their key, in one MULTI/EXEC that also stamps
MARKER with the run's "now". Redis being down never fails or slows billing
(short timeouts; the error is reported). The next sync repairs what a failed
one missed: when MARKER is older than the last successful billing run before
this one (or missing while such runs exist: Redis was down since our first
run), every ongoing call's coins_spent is written again and the keys of the
calls ended since MARKER (or since the first billing run on record) are deleted.
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
        since = _missed_since(engine, marker, run_now)
        repaired = since is not None
        if since is not None:
            ongoing, ended_since = _repair_sets(engine, since)
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


def _missed_since(engine: Engine, synced_at: datetime | None, run_now: datetime) -> datetime | None:
    """Since when the cache is behind: the last successful sync, when an earlier billing
    run committed after it; with no sync ever (Redis was down from our first run on),
    the first billing run on record. None when the cache is in step."""
    with transaction(engine, read_only=True) as session:
        first_run, last_run = session.execute(
            sa.select(sa.func.min(runs.c.run_now), sa.func.max(runs.c.run_now)).where(
                runs.c.job.in_(BILLING_JOBS), runs.c.outcome == "ok", runs.c.run_now < run_now
            )
        ).one()
    if last_run is None:
        return None  # our first run: the cache is the app's until now
    if synced_at is None:
        return first_run  # type: ignore[no-any-return]
    return synced_at if last_run > synced_at else None


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
