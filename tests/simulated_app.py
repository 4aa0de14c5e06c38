"""The Saathii app's own writes, for tests on PostgreSQL: a faithful test double.

Each method is one of the app's HTTP endpoints, issuing the app's statements in the app's
order: plain statements in autocommit (the app runs no transaction), each `pool.acquire()`
of the app a connection of its own from a pool of several, its two presence updates at the
end of a call run concurrently, on two connections. An endpoint's HTTP error is `AppError`.

The facts it follows, each checked by tests/postgres/test_simulated_app.py:
 1. end-call reads the call with a plain SELECT and answers 404 unless it is 'ongoing';
    then it writes, without a status guard;
 2. its earnings come from the coins_spent it read;
 3. at the rate of the listener's listener_badges row for the app server's date.today()
    (basic when there is none), as a float, truncated with int();
 4. end_time is the app's clock, duration_seconds = int(end_time - start_time);
 5. both parties get is_busy = false, wait_time = NULL in two concurrent statements;
 6. Redis: at start HSET call:{id} (5 fields, start_time in epoch seconds) and EXPIRE 7200;
    at the end DEL;
 7. the listener's earn row is always written (0 coins too) after `balance_coins + $1` and a
    separate SELECT of the wallet id (no wallet: neither);
 8. any reason passes through to status: 'coin_empty' violates the CHECK: HTTP 500, nothing
    written;
 9. a half-ended call (reason 'ongoing') is still 'ongoing': it can be ended again, and its
    listener is paid again;
10. the first-minute charge is a SELECT check, then an unguarded `balance_coins - rate`; the
    wallet is created first with INSERT … ON CONFLICT DO NOTHING;
11. at start both parties get wait_time = balance // rate, is_busy, then is_online = TRUE and
    last_seen = now();
12. start requires the customer role, a verified listener profile, neither party on a call;
13. a purchase reads the balance and writes back read + coins (updated_at too); types
    purchase, bonus, referral_bonus; it can answer 500 after committing;
14. it never writes wait_time <= 0 (a call needs balance >= rate: wait_time >= 1);
15. sign-up writes a basic listener_badges row for date.today() and an unverified listener
    profile, is_busy/is_active explicitly, a wallet of 0 / 0.00;
16. no transactions: autocommit statements on several pooled connections;
17. the end-call's response says 'completed' for any reason but 'dropped'.

The app's `listener_profile` table is not in the SPEC's schema: `create_app_schema` adds it,
reduced to what sign-up, verification and start-call use (LISTENER_PROFILE_SQL).

Three things are the tests' own, not the app's: `started_ago` backdates a call's start (a
test cannot wait minutes); `after_read` runs what a test needs between an endpoint's read and
its first write (the app's latency, another session's commit); `observe_app_writes` installs
a trigger that records, for the app's connections only, the balance each of its wallet
writes overwrote: the truth a race test compares `wallets audit` with (a top-up that erased
one of our debits).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.pool
import redis
import sqlalchemy as sa

from tests.support.schema import APP_SCHEMA_SQL

APPLICATION_NAME = "saathii-app"  # how the observer tells the app's connections apart
COINS_PER_MINUTE = {"audio": 10, "video": 60}  # the app's DEFAULT_CALL_RATES
BADGE_RATES = {  # the app's BADGE_RATES: floats, rupees a minute
    "basic": {"audio": 1.0, "video": 6.0},
    "bronze": {"audio": 1.25, "video": 7.0},
    "silver": {"audio": 1.5, "video": 8.5},
    "gold": {"audio": 1.8, "video": 10.0},
}
CALL_KEY_TTL = 7200  # seconds: the app's EXPIRE on call:{id}
PURCHASE_TYPES = ("purchase", "bonus", "referral_bonus")

# the app's listener profile, reduced to what its start-call reads
LISTENER_PROFILE_SQL = """
CREATE TABLE listener_profile (
    listener_id         INT PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    verification_status BOOLEAN DEFAULT FALSE,
    verified_on         TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ DEFAULT now(),
    created_at          TIMESTAMPTZ DEFAULT now()
)
"""

# the tests' observer: what each of the app's wallet writes overwrote
OBSERVER_SQL = f"""
CREATE TABLE test_app_wallet_writes (
    id          SERIAL PRIMARY KEY,
    wallet_id   INT,
    old_balance BIGINT,
    new_balance BIGINT,
    query       TEXT
);
CREATE FUNCTION test_observe_app_wallet_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('application_name') = '{APPLICATION_NAME}' THEN
        INSERT INTO test_app_wallet_writes (wallet_id, old_balance, new_balance, query)
        VALUES (OLD.wallet_id, OLD.balance_coins, NEW.balance_coins, current_query());
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER test_observe_app_wallet_write AFTER UPDATE ON user_wallets
    FOR EACH ROW EXECUTE FUNCTION test_observe_app_wallet_write();
"""


def libpq_dsn(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(False)


def _execute_script(url: str, sql: str) -> None:
    conn = psycopg2.connect(libpq_dsn(url))
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(sql)
    conn.close()


def create_app_schema(url: str) -> None:
    """The app's DDL, run as the app runs it, on an empty database, and its listener
    profile table."""
    _execute_script(url, APP_SCHEMA_SQL.read_text())
    _execute_script(url, LISTENER_PROFILE_SQL)


def observe_app_writes(url: str) -> None:
    """Install the tests' observer of the app's wallet writes (see the module's doc)."""
    _execute_script(url, OBSERVER_SQL)


class AppError(Exception):
    """An HTTP error answer of the app."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Statement:
    backend_pid: int
    sql: str
    autocommit: bool


@dataclass(frozen=True)
class StartedCall:
    """The start-call's response."""

    call_id: int
    call_duration: int  # minutes the balance affords: balance // rate
    remaining_coins: int


@dataclass(frozen=True)
class EndedCall:
    """The end-call's response."""

    call_id: int
    duration_seconds: int
    duration_minutes: int
    coins_spent: int
    listener_money_earned: int
    status: str


@dataclass(frozen=True)
class EndWrite:
    """An end-call that wrote: what it read and the reason it wrote."""

    call_id: int
    reason: str
    listener_id: int
    coins_spent_read: int
    earned: int
    end_time_read: datetime | None  # set: it ends a call it half-ended before


@dataclass(frozen=True)
class TopUp:
    """A purchase: the balance it read and the coins it added."""

    wallet_id: int
    read: int
    coins: int


@dataclass
class SimulatedApp:
    url: str
    cache: redis.Redis | None = None  # the app's Redis (decode_responses=True); None: none
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))  # the app's
    today: Callable[[], date] = field(default=date.today)  # the app server's date.today()
    pool_size: int = 6
    statements: list[Statement] = field(default_factory=list)
    end_writes: list[EndWrite] = field(default_factory=list)
    top_ups: list[TopUp] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._pool = psycopg2.pool.ThreadedConnectionPool(
            self.pool_size, self.pool_size, libpq_dsn(self.url), application_name=APPLICATION_NAME
        )
        self._log_lock = threading.Lock()
        self._gathered = threading.local()  # a step of _concurrently: its barrier

    def close(self) -> None:
        self._pool.closeall()

    # --- the app's pool: autocommit, one connection per acquire --------------------------

    @contextmanager
    def _acquire(self) -> Iterator[_Conn]:
        conn = self._pool.getconn()
        conn.autocommit = True
        barrier = getattr(self._gathered, "barrier", None)
        if barrier is not None:  # gather's coroutines each hold a connection at once
            self._gathered.barrier = None
            barrier.wait(timeout=30)
        try:
            yield _Conn(self, conn)
        finally:
            self._pool.putconn(conn)

    def _log(self, conn: psycopg2.extensions.connection, sql: str) -> None:
        with self._log_lock:
            self.statements.append(Statement(conn.info.backend_pid, sql, conn.autocommit))

    def _concurrently(self, *steps: Callable[[], None]) -> None:
        """asyncio.gather of the app: each step on its own connection, at the same time."""
        errors: list[BaseException] = []
        barrier = threading.Barrier(len(steps))

        def run(step: Callable[[], None]) -> None:
            self._gathered.barrier = barrier
            try:
                step()
            except BaseException as exc:  # re-raised below, as gather does
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(step,)) for step in steps]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    # --- accounts ---------------------------------------------------------------------

    def sign_up(self, n: int, role: str) -> int:
        """Registration: the user, the role, for a listener a basic badge for today and an
        unverified profile, the presence row (online, explicit is_busy / is_active) and a
        wallet of 0 coins and 0.00 rupees."""
        with self._acquire() as conn:
            (user_id,) = conn.one(
                "INSERT INTO users (username, phone, sex, dob, created_at) "
                "VALUES (%(name)s, %(phone)s, NULL, %(dob)s, now()) RETURNING user_id",
                {"name": f"app{n}", "phone": f"+9199{n:08d}", "dob": date(1995, 5, 5)},
            )
            conn.run(
                "INSERT INTO user_roles (user_id, role) VALUES (%(u)s, %(role)s)",
                {"u": user_id, "role": role},
            )
            if role == "listener":
                self._assign_basic_badge_for_today(user_id)
                conn.run(
                    "INSERT INTO listener_profile (listener_id, verification_status) "
                    "VALUES (%(u)s, FALSE)",
                    {"u": user_id},
                )
            conn.run(
                "INSERT INTO user_status "
                "(user_id, is_online, last_seen, is_busy, is_active, updated_at, created_at) "
                "VALUES (%(u)s, TRUE, now(), FALSE, TRUE, now(), now())",
                {"u": user_id},
            )
            conn.run(
                "INSERT INTO user_wallets "
                "(user_id, balance_coins, withdrawable_money, created_at, updated_at) "
                "VALUES (%(u)s, 0, 0.00, now(), now()) ON CONFLICT (user_id) DO NOTHING",
                {"u": user_id},
            )
        return int(user_id)

    def _assign_basic_badge_for_today(self, listener: int) -> None:
        rates = BADGE_RATES["basic"]
        with self._acquire() as conn:
            conn.run(
                "INSERT INTO listener_badges (listener_id, date, badge, audio_rate_per_minute, "
                "video_rate_per_minute, assigned_at) VALUES (%(l)s, %(d)s, 'basic', %(a)s, "
                "%(v)s, now()) ON CONFLICT (listener_id, date) DO UPDATE SET "
                "badge = EXCLUDED.badge, audio_rate_per_minute = EXCLUDED.audio_rate_per_minute, "
                "video_rate_per_minute = EXCLUDED.video_rate_per_minute, updated_at = now()",
                {"l": listener, "d": self.today(), "a": rates["audio"], "v": rates["video"]},
            )

    def verify_listener(self, listener: int) -> None:
        """An admin verifies the listener's profile (the app's verification endpoint)."""
        with self._acquire() as conn:
            conn.run(
                "UPDATE listener_profile SET verification_status = TRUE, verified_on = now(), "
                "updated_at = now() WHERE listener_id = %(l)s",
                {"l": listener},
            )

    def wallet_id(self, user_id: int) -> int:
        with self._acquire() as conn:
            row = conn.one(
                "SELECT wallet_id FROM user_wallets WHERE user_id = %(u)s", {"u": user_id}
            )
        return int(row[0])

    def purchase(
        self,
        user_id: int,
        coins: int,
        rupees: Decimal,
        tx_type: str = "purchase",
        *,
        after_read: Callable[[], None] | None = None,
        answers_500: bool = False,
    ) -> int:
        """Coins added: read the balance, write back read + coins, then the ledger row
        (coins_change = the coins, money_change = the rupees paid). Returns the new balance.
        `after_read` (the tests' own) runs between the read and the write (the app's
        latency, or its wait on our wallet lock); `answers_500`: the app answers HTTP 500
        after committing it all."""
        with self._acquire() as conn:
            (is_customer,) = conn.one(
                "SELECT EXISTS (SELECT 1 FROM user_roles "
                "WHERE user_id = %(u)s AND role = 'customer')",
                {"u": user_id},
            )
            if not is_customer:
                raise AppError(403, "Only customers can add or recharge coins")
            if tx_type not in PURCHASE_TYPES:
                raise AppError(400, "Invalid transaction type")
            wallet = conn.one(
                "SELECT wallet_id, balance_coins FROM user_wallets WHERE user_id = %(u)s",
                {"u": user_id},
            )
            if wallet is None:
                wallet = conn.one(
                    "INSERT INTO user_wallets (user_id, balance_coins, created_at, updated_at) "
                    "VALUES (%(u)s, 0, now(), now()) RETURNING wallet_id, balance_coins",
                    {"u": user_id},
                )
            wallet_id, read = wallet
            if after_read is not None:
                after_read()
            new_balance = read + coins
            conn.run(
                "UPDATE user_wallets SET balance_coins = %(b)s, updated_at = now() "
                "WHERE wallet_id = %(w)s",
                {"b": new_balance, "w": wallet_id},
            )
            self.top_ups.append(TopUp(wallet_id, read, coins))
            conn.one(
                "INSERT INTO user_transactions "
                "(wallet_id, tx_type, coins_change, money_change, created_at, updated_at) "
                "VALUES (%(w)s, %(t)s, %(c)s, %(m)s, now(), now()) "
                "RETURNING transaction_id, created_at",
                {"w": wallet_id, "t": tx_type, "c": coins, "m": rupees},
            )
        if answers_500:
            raise AppError(500, "Internal Server Error")
        return int(new_balance)

    def erased_by_top_ups(self) -> dict[int, int]:
        """Coins each wallet's top-ups erased (the observer must be installed): the balance a
        top-up read minus the balance it overwrote (> 0: a debit committed in between was
        erased), summed per wallet."""
        with self._acquire() as conn, conn.raw.cursor() as cursor:
            cursor.execute(
                "SELECT wallet_id, old_balance FROM test_app_wallet_writes "
                "WHERE query NOT LIKE '%%balance_coins = balance_coins%%' ORDER BY id"
            )
            overwritten = cursor.fetchall()
        writes: dict[int, list[int]] = {}
        for wallet_id, old in overwritten:
            writes.setdefault(wallet_id, []).append(old)
        erased: dict[int, int] = {}
        for wallet_id, olds in writes.items():
            reads = [t.read for t in self.top_ups if t.wallet_id == wallet_id]
            assert len(reads) == len(olds), (wallet_id, reads, olds)
            coins = sum(read - old for old, read in zip(olds, reads, strict=True))
            if coins:
                erased[wallet_id] = coins
        return erased

    # --- calls ------------------------------------------------------------------------

    def _balance(self, user_id: int) -> int:
        with self._acquire() as conn:
            row = conn.one(
                "SELECT balance_coins FROM user_wallets WHERE user_id = %(u)s", {"u": user_id}
            )
        return int(row[0]) if row and row[0] is not None else 0

    def _available(self, user_id: int) -> bool:
        with self._acquire() as conn:
            (ongoing,) = conn.one(
                "SELECT COUNT(*) FROM user_calls "
                "WHERE (user_id = %(u)s OR listener_id = %(u)s) AND status = 'ongoing'",
                {"u": user_id},
            )
        return int(ongoing) == 0

    def _change_coins(self, user_id: int, coins: int, operation: str, tx_type: str) -> None:
        """The app's update_user_coin_balance."""
        with self._acquire() as conn:
            if operation == "subtract":
                if self._balance(user_id) < coins:
                    raise AppError(400, "Insufficient coins")
                conn.run(
                    "UPDATE user_wallets SET balance_coins = balance_coins - %(c)s, "
                    "updated_at = now() WHERE user_id = %(u)s",
                    {"c": coins, "u": user_id},
                )
                change = -coins
            else:
                conn.run(
                    "UPDATE user_wallets SET balance_coins = balance_coins + %(c)s, "
                    "updated_at = now() WHERE user_id = %(u)s",
                    {"c": coins, "u": user_id},
                )
                change = coins
            wallet = conn.one(
                "SELECT wallet_id FROM user_wallets WHERE user_id = %(u)s", {"u": user_id}
            )
            if wallet:
                conn.run(
                    "INSERT INTO user_transactions (wallet_id, tx_type, coins_change, created_at) "
                    "VALUES (%(w)s, %(t)s, %(c)s, now())",
                    {"w": wallet[0], "t": tx_type, "c": change},
                )

    def _set_busy(self, user_id: int, is_busy: bool, wait_time: int | None) -> None:
        with self._acquire() as conn:
            conn.run(
                "UPDATE user_status SET is_busy = %(b)s, wait_time = %(w)s, updated_at = now() "
                "WHERE user_id = %(u)s",
                {"b": is_busy, "w": wait_time, "u": user_id},
            )
            if is_busy:
                conn.run(
                    "UPDATE user_status SET is_online = TRUE, last_seen = now(), "
                    "updated_at = now() WHERE user_id = %(u)s",
                    {"u": user_id},
                )

    def _both_presence(
        self, caller: int, listener: int, is_busy: bool, wait_time: int | None = None
    ) -> None:
        self._concurrently(
            lambda: self._set_busy(caller, is_busy, wait_time),
            lambda: self._set_busy(listener, is_busy, wait_time),
        )

    def start_call(
        self, caller: int, listener: int, call_type: str = "audio", *, started_ago: float = 0
    ) -> StartedCall:
        """The app's start-call. `started_ago` (the tests' own): the call began that many
        seconds ago, on the database's clock and in the Redis key's start_time."""
        rate = COINS_PER_MINUTE[call_type]
        with self._acquire() as conn:
            (is_customer,) = conn.one(
                "SELECT EXISTS (SELECT 1 FROM user_roles "
                "WHERE user_id = %(u)s AND role = 'customer')",
                {"u": caller},
            )
            if not is_customer:
                raise AppError(403, "Only customers can start calls")
            if (
                conn.one(
                    "SELECT user_id, username FROM users WHERE user_id = %(l)s", {"l": listener}
                )
                is None
            ):
                raise AppError(404, "Listener not found")
            profile = conn.one(
                "SELECT verification_status FROM listener_profile WHERE listener_id = %(l)s",
                {"l": listener},
            )
            if profile is None or not profile[0]:
                raise AppError(403, "Listener is not verified")
            if not self._available(listener):
                raise AppError(409, "Listener is currently busy")
            if not self._available(caller):
                raise AppError(409, "You are already on a call")
            conn.run(
                "INSERT INTO user_wallets (user_id, balance_coins, created_at) "
                "VALUES (%(u)s, 0, now()) ON CONFLICT (user_id) DO NOTHING",
                {"u": caller},
            )
            balance = self._balance(caller)
            if balance < rate:
                raise AppError(400, f"Insufficient coins. Required: {rate}, Available: {balance}")
            max_minutes = balance // rate
            self._change_coins(caller, rate, "subtract", "spend")
            if started_ago:
                (call_id, _) = conn.one(
                    "INSERT INTO user_calls (user_id, listener_id, call_type, status, "
                    "coins_spent, listener_money_earned, start_time) VALUES (%(u)s, %(l)s, "
                    "%(t)s, 'ongoing', %(r)s, 0, now() - make_interval(secs => %(ago)s)) "
                    "RETURNING call_id, coins_spent",
                    {"u": caller, "l": listener, "t": call_type, "r": rate, "ago": started_ago},
                )
            else:
                (call_id, _) = conn.one(
                    "INSERT INTO user_calls (user_id, listener_id, call_type, status, "
                    "coins_spent, listener_money_earned) VALUES (%(u)s, %(l)s, %(t)s, "
                    "'ongoing', %(r)s, 0) RETURNING call_id, coins_spent",
                    {"u": caller, "l": listener, "t": call_type, "r": rate},
                )
            self._both_presence(caller, listener, True, max_minutes)
            if self.cache is not None:
                key = f"call:{call_id}"
                self.cache.hset(
                    key,
                    mapping={
                        "user_id": str(caller),
                        "listener_id": str(listener),
                        "call_type": call_type,
                        "start_time": str(int(self.clock().timestamp() - started_ago)),
                        "coins_spent": str(rate),
                    },
                )
                self.cache.expire(key, CALL_KEY_TTL)
        return StartedCall(int(call_id), max_minutes, self._balance(caller))

    def _earning_rate(self, listener: int, call_type: str) -> float:
        with self._acquire() as conn:
            badge = conn.one(
                "SELECT * FROM listener_badges WHERE listener_id = %(l)s AND date = %(d)s",
                {"l": listener, "d": self.today()},
            )
        if badge is None:
            return BADGE_RATES["basic"][call_type]
        audio, video = badge[3], badge[4]  # audio_rate_per_minute, video_rate_per_minute
        return float(audio if call_type == "audio" else video)

    def end_call(
        self,
        call_id: int,
        reason: str | None = "completed",
        *,
        after_read: Callable[[], None] | None = None,
    ) -> EndedCall:
        """The app's end-call. `after_read` (the tests' own) runs between its read and its
        first write: what another session does in that window."""
        with self._acquire() as conn:
            call = conn.one(
                "SELECT call_id, user_id, listener_id, call_type, start_time, end_time, "
                "coins_spent FROM user_calls WHERE call_id = %(c)s AND status = 'ongoing'",
                {"c": call_id},
            )
            if call is None:
                raise AppError(404, "Call not found or already ended")
            _, caller, listener, call_type, start_time, end_time_read, coins_spent = call
            if after_read is not None:
                after_read()
            end_time = self.clock()
            duration_seconds = int((end_time - start_time).total_seconds())
            duration_minutes = max(1, duration_seconds // 60)
            paid_minutes = coins_spent // COINS_PER_MINUTE[call_type]
            earned = int(self._earning_rate(listener, call_type) * paid_minutes)
            try:
                conn.run(
                    "UPDATE user_calls SET end_time = %(e)s, duration_seconds = %(s)s, "
                    "duration_minutes = %(m)s, listener_money_earned = %(p)s, "
                    "status = %(r)s, updated_at = now() WHERE call_id = %(c)s",
                    {
                        "e": end_time,
                        "s": duration_seconds,
                        "m": duration_minutes,
                        "p": earned,
                        "r": reason or "completed",
                        "c": call_id,
                    },
                )
            except psycopg2.errors.CheckViolation as exc:
                raise AppError(500, "Internal Server Error") from exc
            self.end_writes.append(
                EndWrite(
                    call_id, reason or "completed", listener, coins_spent, earned, end_time_read
                )
            )
            self._change_coins(listener, earned, "add", "earn")
            self._both_presence(caller, listener, False)
            if self.cache is not None:
                self.cache.delete(f"call:{call_id}")
        return EndedCall(
            call_id,
            duration_seconds,
            duration_minutes,
            coins_spent,
            earned,
            "dropped" if reason == "dropped" else "completed",
        )


@dataclass
class _Conn:
    """One of the app's pooled connections: every statement it runs is logged."""

    app: SimulatedApp
    raw: psycopg2.extensions.connection

    def run(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self.app._log(self.raw, sql)
        with self.raw.cursor() as cursor:
            cursor.execute(sql, params)

    def one(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        self.app._log(self.raw, sql)
        with self.raw.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
