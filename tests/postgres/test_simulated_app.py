"""PostgreSQL only: the test double of the app (tests/simulated_app.py) writes what the app
writes, one test per fact it follows (listed in its docstring), with values worked out by hand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg2
import pytest
import redis

from tests.conftest import Cli
from tests.simulated_app import (
    APPLICATION_NAME,
    AppError,
    SimulatedApp,
    libpq_dsn,
)

APP_TODAY = date(2026, 12, 4)  # the app server's date.today() in these tests


pytestmark = pytest.mark.usefixtures("postgresql_only")


@pytest.fixture
def app(app_db: str) -> Iterator[SimulatedApp]:
    simulated = SimulatedApp(app_db, today=lambda: APP_TODAY)
    yield simulated
    simulated.close()


class Db:
    """Reads and test set-up writes on a connection of the test's own."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg2.connect(libpq_dsn(url))
        self.conn.autocommit = True

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def one(self, sql: str, params: dict[str, Any] | None = None) -> tuple[Any, ...]:
        (row,) = self.rows(sql, params)
        return row

    def call(self, call_id: int) -> dict[str, Any]:
        with self.conn.cursor() as cursor:
            cursor.execute("SELECT * FROM user_calls WHERE call_id = %(c)s", {"c": call_id})
            names = [d.name for d in cursor.description]
            return dict(zip(names, cursor.fetchone(), strict=True))

    def coins(self, user_id: int) -> int:
        return int(
            self.one(
                "SELECT balance_coins FROM user_wallets WHERE user_id = %(u)s", {"u": user_id}
            )[0]
        )

    def ledger(self, user_id: int) -> list[tuple[str, int, Decimal]]:
        return [
            (t, int(c), m)
            for t, c, m in self.rows(
                "SELECT tx_type, coins_change, money_change FROM user_transactions "
                "JOIN user_wallets USING (wallet_id) WHERE user_id = %(u)s "
                "ORDER BY transaction_id",
                {"u": user_id},
            )
        ]

    def presence(self, user_id: int) -> tuple[Any, ...]:
        return self.one(
            "SELECT is_online, is_busy, wait_time FROM user_status WHERE user_id = %(u)s",
            {"u": user_id},
        )


@pytest.fixture
def db(app_db: str) -> Iterator[Db]:
    made = Db(app_db)
    yield made
    made.conn.close()


def _pair(app: SimulatedApp, coins: int) -> tuple[int, int]:
    """A customer who bought `coins` and a verified listener."""
    listener = app.sign_up(1, "listener")
    app.verify_listener(listener)
    caller = app.sign_up(2, "customer")
    if coins:
        app.purchase(caller, coins, Decimal("9.00"))
    return caller, listener


def _deduct(url: str, *args: str) -> None:
    result = Cli(url)("--json", *args, "coins", "deduct")
    assert result.exit_code == 0, result.stdout + result.stderr


def _kinds(app: SimulatedApp, since: int) -> list[str]:
    """The statements the app ran since the `since`-th, by their first words."""
    return [" ".join(s.sql.split()[:3]) for s in app.statements[since:]]


# --- 1. end-call: a plain read, 404 unless ongoing, then unguarded writes -------------------


def test_1_end_call_reads_then_writes_unguarded_and_answers_404_unless_ongoing(
    app_db: str, app: SimulatedApp, db: Db
) -> None:
    caller, listener = _pair(app, 10)
    # settled by us before the app's read: 404, nothing written
    first = app.start_call(caller, listener, started_ago=70).call_id  # 2nd minute unpaid
    _deduct(app_db)
    before = (db.call(first), db.coins(listener), db.ledger(listener))
    assert before[0]["status"] == "dropped"
    n = len(app.statements)
    with pytest.raises(AppError) as error:
        app.end_call(first)
    assert error.value.status == 404
    assert (db.call(first), db.coins(listener), db.ledger(listener)) == before
    assert _kinds(app, n) == ["SELECT call_id, user_id,"]

    # settled by us between the app's read and its write: the app writes anyway
    app.purchase(caller, 10, Decimal("1.00"))
    second = app.start_call(caller, listener, started_ago=70).call_id  # balance 0: 2nd unpaid
    n = len(app.statements)
    ended = app.end_call(second, after_read=lambda: _deduct(app_db))
    row = db.call(second)
    assert (row["status"], ended.status) == ("completed", "completed")
    # paid twice: our 1.00 rupee (1 paid minute, basic rate) and the app's int(1.0 * 1) coin;
    # the listener's 2.00 rupees are our payments for both calls
    assert db.one("SELECT earnings FROM ops_settlements WHERE call_id = %(c)s", {"c": second}) == (
        Decimal("1.00"),
    )
    assert db.one(
        "SELECT balance_coins, withdrawable_money FROM user_wallets WHERE user_id = %(u)s",
        {"u": listener},
    ) == (1, Decimal("2.00"))
    assert _kinds(app, n) == [
        "SELECT call_id, user_id,",
        "SELECT * FROM",  # the listener's badge for today
        "UPDATE user_calls SET",  # no status guard
        "UPDATE user_wallets SET",
        "SELECT wallet_id FROM",
        "INSERT INTO user_transactions",
        "UPDATE user_status SET",
        "UPDATE user_status SET",
    ]
    update = next(s.sql for s in app.statements[n:] if s.sql.startswith("UPDATE user_calls"))
    assert "status = 'ongoing'" not in update and update.endswith("WHERE call_id = %(c)s")


# --- 2. earnings from the coins_spent it read ------------------------------------------------


def test_2_earnings_use_the_coins_spent_the_end_call_read(
    app_db: str, app: SimulatedApp, db: Db
) -> None:
    caller, listener = _pair(app, 100)
    call = app.start_call(caller, listener, started_ago=70).call_id
    # our charge of the 2nd minute commits between the app's read (coins_spent 10) and write
    ended = app.end_call(call, after_read=lambda: _deduct(app_db))
    row = db.call(call)
    assert row["coins_spent"] == 20
    assert (ended.coins_spent, ended.listener_money_earned) == (10, 1)  # int(1.0 * 10 // 10)
    assert row["listener_money_earned"] == 1
    assert db.ledger(listener) == [("earn", 1, Decimal("0.00"))]


# --- 3. the listener's rate: listener_badges for the app server's date.today() --------------


def test_3_the_rate_is_the_listeners_badge_for_the_app_servers_today(
    app_db: str, app: SimulatedApp, db: Db
) -> None:
    caller, listener = _pair(app, 30)
    call = app.start_call(caller, listener, started_ago=150).call_id  # 3 minutes due
    _deduct(app_db)  # charges 20: coins_spent 30, 3 paid minutes
    assert db.call(call)["coins_spent"] == 30
    # the day changes on the app's server; that day's badge is gold (badges assign's row)
    tomorrow = APP_TODAY + timedelta(days=1)
    db.rows(
        "INSERT INTO listener_badges (listener_id, date, badge, audio_rate_per_minute, "
        "video_rate_per_minute) VALUES (%(l)s, %(d)s, 'gold', 1.80, 10.00)",
        {"l": listener, "d": tomorrow},
    )
    app.today = lambda: tomorrow
    ended = app.end_call(call)
    assert ended.listener_money_earned == 5  # int(1.8 * 3) = int(5.4)
    assert db.call(call)["listener_money_earned"] == 5
    assert (db.coins(listener), db.ledger(listener)) == (5, [("earn", 5, Decimal("0.00"))])


# --- 4. end_time and duration from the app's clock, int() --------------------------------------


def test_4_end_time_and_duration_come_from_the_apps_clock_truncated(
    app: SimulatedApp, db: Db
) -> None:
    caller, listener = _pair(app, 100)
    call = app.start_call(caller, listener).call_id
    start = db.call(call)["start_time"]
    app.clock = lambda: start + timedelta(seconds=185.9)  # the app server's clock, not now()
    ended = app.end_call(call)
    row = db.call(call)
    assert row["end_time"] == start + timedelta(seconds=185.9)
    assert (row["duration_seconds"], row["duration_minutes"]) == (185, 3)
    assert (ended.duration_seconds, ended.duration_minutes) == (185, 3)


# --- 5. both parties freed, in two concurrent statements --------------------------------------


def test_5_end_call_frees_both_parties_in_two_statements_on_two_connections(
    app: SimulatedApp, db: Db
) -> None:
    caller, listener = _pair(app, 35)
    call = app.start_call(caller, listener).call_id
    assert (db.presence(caller), db.presence(listener)) == ((True, True, 3), (True, True, 3))
    n = len(app.statements)
    app.end_call(call)
    assert (db.presence(caller), db.presence(listener)) == (
        (True, False, None),
        (True, False, None),
    )
    frees = [s for s in app.statements[n:] if s.sql.startswith("UPDATE user_status")]
    assert len(frees) == 2
    assert all("is_busy = %(b)s, wait_time = %(w)s" in s.sql for s in frees)
    assert frees[0].backend_pid != frees[1].backend_pid


# --- 6. Redis: HSET of 5 fields and EXPIRE 7200 at start, DEL at the end ------------------------


def test_6_redis_key_written_at_start_with_7200_s_and_deleted_at_the_end(
    app_db: str, cache: redis.Redis
) -> None:
    clock = datetime(2026, 12, 4, 12, 0, 30, 900000, tzinfo=UTC)
    app = SimulatedApp(app_db, cache=cache, clock=lambda: clock, today=lambda: APP_TODAY)
    try:
        caller, listener = _pair(app, 100)
        call = app.start_call(caller, listener, "audio").call_id
        key = f"call:{call}"
        assert cache.hgetall(key) == {
            "user_id": str(caller),
            "listener_id": str(listener),
            "call_type": "audio",
            "start_time": "1796385630",  # int(2026-12-04T12:00:30.9Z as epoch seconds)
            "coins_spent": "10",
        }
        assert 7190 <= cache.ttl(key) <= 7200
        app.end_call(call)
        assert not cache.exists(key)
    finally:
        app.close()


# --- 7. the earn row: always, after balance_coins + $1 and a SELECT of the wallet id ------------


def test_7_the_earn_row_is_written_even_for_0_coins(app: SimulatedApp, db: Db) -> None:
    caller, listener = _pair(app, 100)
    # a badge of 0.50 rupees a minute (any row the app finds): int(0.5 * 1) = 0 coins
    db.rows(
        "UPDATE listener_badges SET audio_rate_per_minute = 0.50 WHERE listener_id = %(l)s",
        {"l": listener},
    )
    call = app.start_call(caller, listener).call_id
    n = len(app.statements)
    assert app.end_call(call).listener_money_earned == 0
    assert db.ledger(listener) == [("earn", 0, Decimal("0.00"))]
    sqls = [s.sql for s in app.statements[n:]]
    add, select, insert = (
        sqls.index(next(s for s in sqls if s.startswith(prefix)))
        for prefix in (
            "UPDATE user_wallets SET balance_coins = balance_coins + %(c)s",
            "SELECT wallet_id FROM user_wallets",
            "INSERT INTO user_transactions",
        )
    )
    assert add < select < insert


# --- 8. any reason passes through; coin_empty violates the CHECK: 500, nothing written ----------


def test_8_any_reason_passes_through_and_coin_empty_is_a_500_that_writes_nothing(
    app: SimulatedApp, db: Db
) -> None:
    caller, listener = _pair(app, 100)
    call = app.start_call(caller, listener).call_id
    before = (db.call(call), db.ledger(listener), db.presence(caller), db.presence(listener))
    with pytest.raises(AppError) as error:
        app.end_call(call, reason="coin_empty")
    assert error.value.status == 500
    assert (
        db.call(call),
        db.ledger(listener),
        db.presence(caller),
        db.presence(listener),
    ) == before
    assert before[0]["status"] == "ongoing" and before[2][1] and before[3][1]  # both busy
    app.end_call(call, reason="dropped")  # a reason the CHECK allows is written as it is
    assert db.call(call)["status"] == "dropped"


# --- 9. a half-ended call can be ended again: paid again, completed -----------------------------


def test_9_a_half_ended_call_is_ended_again_and_its_listener_paid_again(
    app: SimulatedApp, db: Db
) -> None:
    caller, listener = _pair(app, 100)
    call = app.start_call(caller, listener).call_id
    app.end_call(call, reason="ongoing")
    half = db.call(call)
    assert (half["status"], half["end_time"] is not None, db.coins(listener)) == (
        "ongoing",
        True,
        1,
    )
    app.end_call(call)
    assert db.call(call)["status"] == "completed"
    assert db.coins(listener) == 2
    assert db.ledger(listener) == [("earn", 1, Decimal("0.00")), ("earn", 1, Decimal("0.00"))]


# --- 10. first minute: a SELECT check, then an unguarded subtract; the wallet ON CONFLICT -------


def test_10_the_first_minute_is_a_check_then_an_unguarded_subtract(
    app: SimulatedApp, db: Db
) -> None:
    caller, listener = _pair(app, 25)
    n = len(app.statements)
    started = app.start_call(caller, listener)
    money = [
        s.sql for s in app.statements[n:] if "user_wallets" in s.sql or "user_transactions" in s.sql
    ]
    assert [" ".join(s.split()[:4]) for s in money] == [
        "INSERT INTO user_wallets (user_id,",  # … ON CONFLICT (user_id) DO NOTHING
        "SELECT balance_coins FROM user_wallets",  # the balance for wait_time
        "SELECT balance_coins FROM user_wallets",  # the check
        "UPDATE user_wallets SET balance_coins",  # no guard
        "SELECT wallet_id FROM user_wallets",
        "INSERT INTO user_transactions (wallet_id,",
        "SELECT balance_coins FROM user_wallets",  # the response's remaining_coins
    ]
    assert money[0].endswith("ON CONFLICT (user_id) DO NOTHING")
    assert money[3] == (
        "UPDATE user_wallets SET balance_coins = balance_coins - %(c)s, "
        "updated_at = now() WHERE user_id = %(u)s"
    )
    assert (started.remaining_coins, db.coins(caller)) == (15, 15)
    assert db.ledger(caller)[-1] == ("spend", -10, Decimal("0.00"))
    # a customer with no wallet: created (0 coins) before the check answers 400
    app.end_call(started.call_id)
    other = app.sign_up(3, "customer")
    db.rows("DELETE FROM user_wallets WHERE user_id = %(u)s", {"u": other})
    with pytest.raises(AppError) as error:
        app.start_call(other, listener)
    assert error.value.status == 400
    assert db.coins(other) == 0


# --- 11. at start: wait_time = balance // rate on both, is_online and last_seen ---------------


def test_11_start_sets_wait_time_online_and_last_seen_on_both_parties(
    app: SimulatedApp, db: Db
) -> None:
    caller, listener = _pair(app, 95)
    db.rows("UPDATE user_status SET is_online = FALSE, last_seen = now() - interval '1 hour'")
    started = app.start_call(caller, listener)
    assert started.call_duration == 9  # 95 // 10, read before the first minute's charge
    assert started.remaining_coins == 85
    for user in (caller, listener):
        assert db.presence(user) == (True, True, 9)
        (age,) = db.one(
            "SELECT now() - last_seen < interval '1 minute' FROM user_status WHERE user_id = %(u)s",
            {"u": user},
        )
        assert age is True


# --- 12. start: customer role, verified listener, neither party on a call ---------------------


def test_12_start_requires_a_customer_a_verified_listener_and_both_free(
    app: SimulatedApp, db: Db
) -> None:
    listener = app.sign_up(1, "listener")
    caller = app.sign_up(2, "customer")
    other = app.sign_up(3, "customer")
    second_listener = app.sign_up(4, "listener")
    for user in (caller, other):
        app.purchase(user, 100, Decimal("9.00"))

    def status_of(caller_id: int, listener_id: int) -> int:
        with pytest.raises(AppError) as error:
            app.start_call(caller_id, listener_id)
        return error.value.status

    assert status_of(caller, listener) == 403  # the listener's profile is not verified
    assert status_of(second_listener, listener) == 403  # not a customer
    app.verify_listener(listener)
    app.verify_listener(second_listener)
    app.start_call(caller, listener)
    assert status_of(other, listener) == 409  # the listener is on a call
    assert status_of(caller, second_listener) == 409  # the caller is on a call
    assert db.one("SELECT count(*) FROM user_calls") == (1,)
    assert db.coins(other) == 100


# --- 13. purchase: read-modify-write, updated_at, bonus types, 500 after committing ------------


def test_13_purchase_reads_then_writes_back_and_can_answer_500_after_committing(
    app: SimulatedApp, db: Db
) -> None:
    caller, _ = _pair(app, 100)
    db.rows("UPDATE user_wallets SET updated_at = now() - interval '1 day'")

    # a debit that commits between the purchase's read and its write is erased
    def debit() -> None:
        db.rows(
            "UPDATE user_wallets SET balance_coins = balance_coins - 30 WHERE user_id = %(u)s",
            {"u": caller},
        )

    app.purchase(caller, 50, Decimal("5.00"), after_read=debit)
    assert db.coins(caller) == 150  # read 100 + 50: the debit of 30 is gone
    (fresh,) = db.one(
        "SELECT now() - updated_at < interval '1 minute' FROM user_wallets WHERE user_id = %(u)s",
        {"u": caller},
    )
    assert fresh is True
    assert app.purchase(caller, 5, Decimal("0.00"), "bonus") == 155
    assert app.purchase(caller, 7, Decimal("0.00"), "referral_bonus") == 162
    with pytest.raises(AppError) as bad_type:
        app.purchase(caller, 1, Decimal("0.00"), "spend")
    assert bad_type.value.status == 400
    # an answer of 500 after committing: the client retries and buys twice
    for _ in range(2):
        with pytest.raises(AppError) as error:
            app.purchase(caller, 10, Decimal("1.00"), answers_500=True)
        assert error.value.status == 500
    assert db.coins(caller) == 182
    assert db.ledger(caller)[-4:] == [
        ("bonus", 5, Decimal("0.00")),
        ("referral_bonus", 7, Decimal("0.00")),
        ("purchase", 10, Decimal("1.00")),
        ("purchase", 10, Decimal("1.00")),
    ]


# --- 14. never a wait_time <= 0 ----------------------------------------------------------------


def test_14_the_app_never_writes_a_wait_time_of_0_or_less(app: SimulatedApp, db: Db) -> None:
    caller, listener = _pair(app, 19)
    poor = app.sign_up(3, "customer")
    app.purchase(poor, 9, Decimal("1.00"))
    with pytest.raises(AppError) as error:
        app.start_call(poor, listener)  # cannot pay the first minute: no call, no wait_time
    assert error.value.status == 400
    started = app.start_call(caller, listener)  # 19 // 10
    assert (db.presence(caller)[2], db.presence(listener)[2]) == (1, 1)
    app.end_call(started.call_id)
    assert db.presence(caller)[2] is None
    written = [s.sql for s in app.statements if "wait_time" in s.sql]
    assert all("wait_time = %(w)s" in sql for sql in written)  # only balance // rate or NULL
    assert db.one("SELECT count(*) FROM user_status WHERE wait_time <= 0") == (0,)


# --- 15. sign-up -----------------------------------------------------------------------------


def test_15_sign_up_writes_a_basic_badge_an_unverified_profile_presence_and_an_empty_wallet(
    app: SimulatedApp, db: Db
) -> None:
    listener = app.sign_up(1, "listener")
    customer = app.sign_up(2, "customer")
    assert db.rows(
        "SELECT listener_id, date, badge, audio_rate_per_minute, video_rate_per_minute "
        "FROM listener_badges"
    ) == [(listener, APP_TODAY, "basic", Decimal("1.00"), Decimal("6.00"))]
    assert db.rows("SELECT listener_id, verification_status FROM listener_profile") == [
        (listener, False)
    ]
    for user in (listener, customer):
        assert db.one(
            "SELECT is_online, is_busy, is_active, wait_time FROM user_status "
            "WHERE user_id = %(u)s",
            {"u": user},
        ) == (True, False, True, None)
        assert db.one(
            "SELECT balance_coins, withdrawable_money FROM user_wallets WHERE user_id = %(u)s",
            {"u": user},
        ) == (0, Decimal("0.00"))
    assert all(
        "is_busy, is_active" in s.sql
        for s in app.statements
        if s.sql.startswith("INSERT INTO user_status")
    )


# --- 16. no transactions: autocommit statements on several pooled connections ----------------


def test_16_no_transactions_autocommit_statements_on_several_connections(
    app: SimulatedApp, db: Db
) -> None:
    caller, listener = _pair(app, 100)
    call = app.start_call(caller, listener).call_id
    held: list[tuple[Any, ...]] = []

    def look() -> None:  # between the end-call's read and its write
        held.extend(
            db.rows(
                "SELECT state FROM pg_stat_activity WHERE application_name = %(a)s "
                "AND state <> 'idle'",
                {"a": APPLICATION_NAME},
            )
        )

    app.end_call(call, after_read=look)
    assert held == []  # no connection of the app idle in a transaction
    assert all(s.autocommit for s in app.statements)
    pids = {s.backend_pid for s in app.statements}
    assert len(pids) >= 3
    assert not any(s.sql.split()[0] in ("BEGIN", "COMMIT", "START") for s in app.statements)


# --- 17. the end-call's response says completed for reason ongoing ----------------------------


def test_17_the_end_calls_response_says_completed_for_reason_ongoing(
    app: SimulatedApp, db: Db
) -> None:
    caller, listener = _pair(app, 100)
    call = app.start_call(caller, listener).call_id
    assert app.end_call(call, reason="ongoing").status == "completed"
    assert db.call(call)["status"] == "ongoing"
    assert app.end_call(call, reason="dropped").status == "dropped"
