"""Realistic sample data, deterministic for a seed and a "now".

Used by `demo`, the tests and the benchmarks. Every wallet's balance equals the
sum of its ledger rows, as in a healthy app database, so that whatever the jobs
do afterwards can be checked against the ledger.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.db import tables
from saathii_ops.db.calls import CallStatus
from saathii_ops.db.tables import (
    listener_badges,
    user_calls,
    user_roles,
    user_status,
    user_transactions,
    user_wallets,
)
from saathii_ops.reports import Report
from saathii_ops.settings import Settings

LANGUAGES = ("Hindi", "English", "Tamil", "Telugu", "Bengali", "Marathi", "Kannada")
INTERESTS = ("music", "movies", "cricket", "travel", "books", "cooking", "career", "fitness")
# previous-day call minutes a listener may have: around each badge threshold
YESTERDAY_MINUTES = (0, 25, 59, 60, 95, 119, 120, 150, 179, 180, 240)


@dataclass
class SampleReport(Report):
    users: int
    listeners: int
    wallets: int
    ongoing_calls: int
    past_calls: int
    transactions: int


def _insert(session: Session, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(sa.insert(table), rows)


@dataclass
class _Population:
    user_ids: list[int]
    listeners: list[int]  # the first quarter of the users
    customers: list[int]


def fill(
    session: Session, now: datetime, settings: Settings, *, users: int = 200, seed: int = 7
) -> SampleReport:
    """Add `users` users (a quarter of them listeners) with wallets, presence,
    yesterday's calls and ongoing calls at `now`. Does not commit.

    Each step draws from one random generator in turn: the steps' order is the data's.
    """
    rng = random.Random(seed)
    people = _add_users(session, rng, now, users, seed)
    status_rows, inactive = _presence(rng, now, people)
    spent = {u: 0 for u in people.user_ids}  # coins each user's calls cost
    past_calls = _yesterdays_calls(rng, now, settings, people, spent)
    ongoing = _ongoing_calls(rng, now, settings, people, inactive, status_rows, spent)
    _leave_busy_flags(rng, people, status_rows)
    _insert(session, user_status, list(status_rows.values()))
    _insert(session, user_calls, past_calls + ongoing)
    wallets, transactions = _add_wallets(session, rng, now, people, spent)
    _add_basic_badges(session, now, settings, people.listeners)
    return SampleReport(
        users=len(people.user_ids),
        listeners=len(people.listeners),
        wallets=wallets,
        ongoing_calls=len(ongoing),
        past_calls=len(past_calls),
        transactions=transactions,
    )


def _add_users(
    session: Session, rng: random.Random, now: datetime, users: int, seed: int
) -> _Population:
    """The users and their roles: the first quarter listeners, the rest customers."""
    prefix = f"s{seed % 100:02d}"
    user_rows = [
        {
            "username": f"{prefix}{i:07d}"[:10],
            "sex": rng.choice(("male", "female")),
            "dob": date(1970 + rng.randrange(35), rng.randrange(1, 13), rng.randrange(1, 29)),
            "phone": f"+91{seed % 1000:03d}{i:09d}",
            "preferred_language": rng.choice(LANGUAGES),
            "interests": rng.sample(INTERESTS, 2),
            "rating": Decimal(rng.randrange(300, 500)) / 100,
            "bio": None,
            "created_at": now - timedelta(days=rng.randrange(1, 400)),
            "updated_at": now,
        }
        for i in range(users)
    ]
    user_ids = list(
        session.execute(
            sa.insert(tables.users).returning(tables.users.c.user_id, sort_by_parameter_order=True),
            user_rows,
        ).scalars()
    )
    listener_count = max(1, users // 4)
    people = _Population(user_ids, user_ids[:listener_count], user_ids[listener_count:])
    _insert(
        session,
        user_roles,
        [{"user_id": u, "role": "listener", "assigned_at": now} for u in people.listeners]
        + [{"user_id": u, "role": "customer", "assigned_at": now} for u in people.customers],
    )
    return people


def _presence(
    rng: random.Random, now: datetime, people: _Population
) -> tuple[dict[int, dict[str, Any]], set[int]]:
    """Each user's user_status row, and the inactive users: most listeners online; some
    online users have gone silent."""
    user_ids = people.user_ids
    inactive = set(rng.sample(user_ids, max(1, len(user_ids) // 50)))
    status_rows = {
        u: {
            "user_id": u,
            "is_online": rng.random() < (0.7 if u in people.listeners else 0.3),
            "last_seen": now - timedelta(seconds=rng.randrange(0, 240)),
            "is_busy": False,
            "wait_time": None,
            "is_active": u not in inactive,
        }
        for u in user_ids
    }
    for u in rng.sample(user_ids, max(1, len(user_ids) // 10)):  # silent for 6-60 minutes
        status_rows[u].update(
            is_online=True, last_seen=now - timedelta(minutes=rng.randrange(6, 60))
        )
    return status_rows, inactive


def _yesterdays_calls(
    rng: random.Random,
    now: datetime,
    settings: Settings,
    people: _Population,
    spent: dict[int, int],
) -> list[dict[str, Any]]:
    """Finished calls of the previous business day, each listener's minutes spread
    around the badge thresholds; their coins are added to `spent`."""
    tz = settings.business_tz
    rates = settings.coins_per_minute
    yesterday = (now.astimezone(tz) - timedelta(days=1)).date()
    day_start = datetime.combine(yesterday, datetime.min.time(), tz)
    past_calls: list[dict[str, Any]] = []
    for listener in people.listeners:
        remaining = rng.choice(YESTERDAY_MINUTES)
        while remaining > 0:
            minutes = min(remaining, rng.randrange(5, 45))
            remaining -= minutes
            caller = rng.choice(people.customers) if people.customers else listener
            call_type = "video" if rng.random() < 0.2 else "audio"
            start = day_start + timedelta(minutes=rng.randrange(0, 24 * 60 - minutes))
            coins = rates.video * minutes if call_type == "video" else rates.audio * minutes
            spent[caller] += coins
            past_calls.append(
                {
                    "user_id": caller,
                    "listener_id": listener,
                    "call_type": call_type,
                    "start_time": start,
                    "end_time": start + timedelta(minutes=minutes),
                    "duration_seconds": minutes * 60,
                    "duration_minutes": minutes,
                    "coins_spent": coins,
                    "listener_money_earned": minutes,
                    "status": CallStatus.COMPLETED if rng.random() < 0.85 else CallStatus.DROPPED,
                    "created_at": start,
                    "updated_at": start + timedelta(minutes=minutes),
                }
            )
    return past_calls


def _ongoing_calls(
    rng: random.Random,
    now: datetime,
    settings: Settings,
    people: _Population,
    inactive: set[int],
    status_rows: dict[int, dict[str, Any]],
    spent: dict[int, int],
) -> list[dict[str, Any]]:
    """Calls going on at `now`, billed up to a minute or two ago, some behind, one longer
    than allowed; both parties busy. Their coins are added to `spent`."""
    rates = settings.coins_per_minute
    ongoing: list[dict[str, Any]] = []
    idle_listeners = [u for u in people.listeners if u not in inactive]
    rng.shuffle(idle_listeners)
    callers = list(people.customers)
    rng.shuffle(callers)
    for n in range(min(len(idle_listeners), len(callers), max(1, len(people.user_ids) // 10))):
        caller, listener = callers[n], idle_listeners[n]
        call_type = "video" if n % 5 == 0 else "audio"
        rate = rates.video if call_type == "video" else rates.audio
        elapsed = timedelta(seconds=rng.randrange(20, 40 * 60))
        if n == 1:
            elapsed = timedelta(minutes=settings.call_max_minutes + 7)  # longer than allowed
        started_minutes = int(elapsed.total_seconds() // 60) + 1
        paid = max(1, started_minutes - rng.choice((0, 0, 1, 1, 2, 7)))  # some behind
        spent[caller] += rate * paid
        ongoing.append(
            {
                "user_id": caller,
                "listener_id": listener,
                "call_type": call_type,
                "start_time": now - elapsed,
                "end_time": None,
                "duration_seconds": None,
                "duration_minutes": None,
                "coins_spent": rate * paid,
                "listener_money_earned": 0,
                "status": CallStatus.ONGOING,
                "created_at": now - elapsed,
                "updated_at": now,
            }
        )
        for party in (caller, listener):
            status_rows[party].update(
                is_online=True, is_busy=True, last_seen=now - timedelta(seconds=20)
            )
        status_rows[caller]["wait_time"] = rng.randrange(1, 60)
        if n == 2:  # a listener whose app went silent mid-call
            status_rows[listener]["last_seen"] = now - timedelta(
                minutes=settings.call_stale_minutes + 5
            )
        if n == 3:  # the app's own signal that the caller's time is up
            status_rows[caller]["wait_time"] = 0
    return ongoing


def _leave_busy_flags(
    rng: random.Random, people: _Population, status_rows: dict[int, dict[str, Any]]
) -> None:
    """Busy flags left behind by calls that ended."""
    leftover = [u for u in people.user_ids if not status_rows[u]["is_busy"]]
    for u in rng.sample(leftover, min(len(leftover), max(1, len(people.user_ids) // 40))):
        status_rows[u].update(is_busy=True, wait_time=rng.choice((None, 5, 0, -2)))


def _add_wallets(
    session: Session,
    rng: random.Random,
    now: datetime,
    people: _Population,
    spent: dict[int, int],
) -> tuple[int, int]:
    """Wallets and their ledgers: a few customers never opened one; every balance is
    backed by the ledger. Returns the numbers of wallets and of ledger rows."""
    no_wallet = set(rng.sample(people.customers, max(0, len(people.customers) // 40)))
    wallet_users = [u for u in people.user_ids if u not in no_wallet or spent[u]]
    purchases = {u: spent[u] + rng.choice((0, 5, 20, 40, 150, 600, 2500)) for u in wallet_users}
    earned = {
        u: Decimal(rng.randrange(0, 200000)) / 100 if u in people.listeners else Decimal("0.00")
        for u in wallet_users
    }
    wallet_ids = list(
        session.execute(
            sa.insert(user_wallets).returning(
                user_wallets.c.wallet_id, sort_by_parameter_order=True
            ),
            [
                {
                    "user_id": u,
                    "balance_coins": purchases[u] - spent[u],
                    "withdrawable_money": earned[u],
                    "created_at": now - timedelta(days=30),
                    "updated_at": now,
                }
                for u in wallet_users
            ],
        ).scalars()
    )
    bought_at = now - timedelta(days=2)
    ledger = [
        {
            "wallet_id": wallet_id,
            "tx_type": tx_type,
            "coins_change": coins,
            "money_change": money,
            "created_at": at,
            "updated_at": at,
        }
        for wallet_id, u in zip(wallet_ids, wallet_users, strict=True)
        for tx_type, coins, money, at in (
            ("purchase", purchases[u], Decimal("0.00"), bought_at),
            ("spend", -spent[u], Decimal("0.00"), now),
            ("earn", 0, earned[u], bought_at),
        )
        if coins or money
    ]
    _insert(session, user_transactions, ledger)
    return len(wallet_ids), len(ledger)


def _add_basic_badges(
    session: Session, now: datetime, settings: Settings, listeners: list[int]
) -> None:
    """The 'basic' row the app writes for some listeners on the day it first sees them."""
    basic = settings.badge_rates.basic
    _insert(
        session,
        listener_badges,
        [
            {
                "listener_id": u,
                "date": now.astimezone(settings.business_tz).date(),
                "badge": "basic",
                "audio_rate_per_minute": basic.audio,
                "video_rate_per_minute": basic.video,
                "assigned_at": now,
            }
            for u in listeners[::3]
        ],
    )
