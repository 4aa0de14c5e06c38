"""The app's Redis call cache (SPEC §14): hash `call:{call_id}` with the fields
user_id, listener_id, call_type, start_time (epoch seconds) and coins_spent, and a TTL
of APP_KEY_TTL seconds from the call's start (the app's).

After a billing run commits, the calls it charged get their new coins_spent,
only on keys that exist (a Lua script: checking and writing in one step, so a
key the app lets expire is never recreated holding coins_spent alone), and the
calls it ended lose their key, in one MULTI/EXEC round trip that also stamps
MARKER with the run's "now". Redis being down never fails or slows billing
(short timeouts; the error is reported). The next sync repairs what a failed
one missed: when MARKER is older than the last successful billing run before
this one (or missing while such runs exist: Redis was down since our first
run), every ongoing call's coins_spent is written again, a missing key is
recreated whole with what is left of the app's TTL (Redis may have lost it
while down), and the keys of the calls ended since MARKER (or since the first
billing run on record) are deleted (docs/decisions.md#the-redis-call-cache).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from saathii_ops.billing.report import BillingReport
from saathii_ops.db.calls import CallStatus
from saathii_ops.db.engine import bound_statements, mask_url_text, transaction
from saathii_ops.db.tables import RunOutcome
from saathii_ops.db.tables import ops_job_runs as runs
from saathii_ops.db.tables import user_calls as calls
from saathii_ops.errors import OpsError
from saathii_ops.output.masking import first_line
from saathii_ops.reports import Report
from saathii_ops.runtime.registry import JOBS
from saathii_ops.settings import Settings

if TYPE_CHECKING:
    from redis.client import Pipeline

log = logging.getLogger(__name__)


MARKER = "saathii-ops:call-cache:synced-at"
TIMEOUT_SECONDS = 0.5
# the reads after the commit: the missed-sync check is one index lookup; a repair reads
# every ongoing call
BOOKKEEPING_SECONDS = 2.0
REPAIR_TIMEOUT_SECONDS = 30.0
APP_KEY_TTL = timedelta(seconds=7200)  # the app sets it when the call starts
KEYS_PER_SCRIPT = 5000  # keys per EVAL: bounds one command's size, not the round trips

# KEYS: call keys. ARGV, six per key: coins_spent, then the key's other fields and its
# TTL in seconds to recreate it whole when missing, or six values of which the TTL is
# '' to leave a missing key missing. Returns {updated, recreated}.
SET_COINS_SPENT = """
local updated, recreated = 0, 0
for i, key in ipairs(KEYS) do
  local a = (i - 1) * 6
  if redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'coins_spent', ARGV[a + 1])
    updated = updated + 1
  elseif ARGV[a + 6] ~= '' then
    redis.call('HSET', key, 'user_id', ARGV[a + 2], 'listener_id', ARGV[a + 3],
               'call_type', ARGV[a + 4], 'start_time', ARGV[a + 5], 'coins_spent', ARGV[a + 1])
    redis.call('EXPIRE', key, ARGV[a + 6])
    recreated = recreated + 1
  end
end
return {updated, recreated}
"""


@dataclass
class CacheSync(Report):
    updated: int  # keys whose coins_spent was set
    recreated: int  # keys a repair wrote whole again, with the app's TTL
    missing: int  # calls charged without a key (the app's expired): left missing
    deleted: int
    repaired: bool
    error: str | None = None


@dataclass(frozen=True)
class CallKey:
    """What a repair needs to recreate a call's key as the app writes it."""

    user_id: int | None
    listener_id: int | None
    call_type: str | None
    start_time: datetime
    coins_spent: int

    def arguments(self, run_now: datetime) -> list[str | int]:
        """The script's arguments after coins_spent: the other fields and what is left of
        the app's TTL at `run_now` ('' once the app's own key would have expired)."""
        ttl = int((self.start_time + APP_KEY_TTL - run_now).total_seconds())
        return [
            "" if self.user_id is None else self.user_id,
            "" if self.listener_id is None else self.listener_id,
            self.call_type or "",
            int(self.start_time.timestamp()),  # epoch seconds, as the app writes it
            ttl if ttl > 0 else "",
        ]


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
    import redis  # an optional extra (saathii-ops[redis]): imported only when configured

    client = redis.Redis.from_url(
        redis_url,
        socket_timeout=TIMEOUT_SECONDS,
        socket_connect_timeout=TIMEOUT_SECONDS,
        decode_responses=True,
    )
    problems: list[str] = []
    try:
        marker = _read_marker(client.get(MARKER), problems)
        pairs = report.cache_updates
        updates = dict(zip(pairs[::2], pairs[1::2], strict=True))
        ended = {call.call_id for call in report.ended}
        whole: dict[int, CallKey] = {}
        check_failed = False
        try:
            since = _missed_since(engine, marker, run_now)
            if since is not None:
                whole, ended_since = _repair_sets(engine, since)
                updates = {**{c: k.coins_spent for c, k in whole.items()}, **updates}
                ended |= ended_since
        except (SQLAlchemyError, OpsError) as exc:
            # this run's own changes still go to Redis; the marker stays where it was, so
            # the next run finds the sync missed and repairs it
            problems.append(f"could not check for a missed sync: {first_line(exc)}")
            since, check_failed = None, True
        repaired = since is not None
        call_ids = sorted(set(updates) - ended)
        pipe = client.pipeline(transaction=True)
        _queue_updates(pipe, call_ids, updates, whole, run_now)
        if ended:
            pipe.delete(*(key(call_id) for call_id in sorted(ended)))
        if not check_failed:
            pipe.set(MARKER, run_now.isoformat())
        results = pipe.execute()
        scripts = results[: len(results) - bool(ended) - (not check_failed)]
        updated = sum(int(r[0]) for r in scripts)
        recreated = sum(int(r[1]) for r in scripts)
        error = "; ".join(problems) or None
        if error:
            log.warning("Redis call cache: %s", error)
        return CacheSync(
            updated, recreated, len(call_ids) - updated - recreated, len(ended), repaired, error
        )
    except redis.RedisError as exc:
        error = f"Redis call cache at {mask_url_text(redis_url)} not updated: {exc}"
        log.warning("%s; the next billing run repairs it", error)
        return CacheSync(0, 0, 0, 0, False, error)
    finally:
        client.close()


def _queue_updates(
    pipe: Pipeline,
    call_ids: list[int],
    updates: dict[int, int],
    whole: dict[int, CallKey],
    run_now: datetime,
) -> None:
    """Each call's coins_spent set, by scripts of KEYS_PER_SCRIPT keys; a call repaired
    whole (`whole`) recreates its key when Redis lost it."""
    for start in range(0, len(call_ids), KEYS_PER_SCRIPT):
        part = call_ids[start : start + KEYS_PER_SCRIPT]
        arguments: list[str | int] = []
        for call_id in part:
            if call_id in whole:
                arguments += [updates[call_id], *whole[call_id].arguments(run_now)]
            else:
                arguments += [updates[call_id], "", "", "", "", ""]
        pipe.eval(SET_COINS_SPENT, len(part), *(key(c) for c in part), *arguments)


def _read_marker(stamp: object, problems: list[str]) -> datetime | None:
    """The sync marker's time; one that cannot be read (not ISO-8601: someone else wrote
    it) counts as no marker, so this sync repairs everything and writes a good one."""
    if stamp is None:
        return None
    try:
        marker = datetime.fromisoformat(str(stamp))
    except ValueError:
        problems.append(f"the marker {MARKER} held {str(stamp)[:40]!r}, not a time: repaired")
        return None
    return marker if marker.tzinfo is not None else marker.replace(tzinfo=UTC)


def _missed_since(engine: Engine, synced_at: datetime | None, run_now: datetime) -> datetime | None:
    """Since when the cache is behind: the last successful sync, when an earlier billing
    run committed after it; with no sync ever (Redis was down from our first run on),
    the first billing run on record. None when the cache is in step."""
    with transaction(engine, read_only=True) as session:
        bound_statements(session, BOOKKEEPING_SECONDS)
        first_run, last_run = session.execute(
            sa.select(sa.func.min(runs.c.run_now), sa.func.max(runs.c.run_now)).where(
                runs.c.job.in_([job.name for job in JOBS if job.bills]),
                runs.c.outcome == RunOutcome.OK,
                runs.c.run_now < run_now,
            )
        ).one()
    if last_run is None:
        return None  # our first run: the cache is the app's until now
    if synced_at is None:
        return first_run  # type: ignore[no-any-return]
    return synced_at if last_run > synced_at else None


def _repair_sets(engine: Engine, since: datetime) -> tuple[dict[int, CallKey], set[int]]:
    with transaction(engine, read_only=True) as session:
        bound_statements(session, REPAIR_TIMEOUT_SECONDS)
        ongoing = {
            row.call_id: CallKey(
                row.user_id, row.listener_id, row.call_type, row.start_time, row.coins_spent
            )
            for row in session.execute(
                sa.select(
                    calls.c.call_id,
                    calls.c.user_id,
                    calls.c.listener_id,
                    calls.c.call_type,
                    calls.c.start_time,
                    sa.func.coalesce(calls.c.coins_spent, 0).label("coins_spent"),
                ).where(calls.c.status == CallStatus.ONGOING)
            )
        }
        ended = set(
            session.scalars(
                sa.select(calls.c.call_id).where(
                    calls.c.status != CallStatus.ONGOING, calls.c.end_time >= since
                )
            )
        )
    return ongoing, ended
