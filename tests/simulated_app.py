"""The Saathii app's own writes, as issue 9 describes them, for tests on PostgreSQL.

Every write is the app's: plain statements in autocommit (the app runs no
transaction around them), its first-minute charge at start with a 'spend' row,
its end-call unguarded by status and paying the listener in coins with an
'earn' row in coins_change, its top-up by read-modify-write, its purchases with
the rupees paid in money_change, and the client's 'ongoing' reason that sets
end_time and pays but leaves the call ongoing.

Two writes take a row lock around the app's statement only to learn what the
app's statement overwrote — the same wait, the same result, but the test then
knows the truth that `wallets audit` must find: the end-call reads the status
it overwrites (a call we had settled: ended again after settlement), the top-up
the balance it overwrites (lower than it read: a debit lost).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import sqlalchemy as sa

APP_SCHEMA_SQL = Path(__file__).parent / "fixtures" / "app-schema.sql"
COINS_PER_MINUTE = {"audio": 10, "video": 60}
LISTENER_RATE = {"audio": Decimal("1.00"), "video": Decimal("6.00")}  # basic, rupees a minute


def libpq_dsn(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(False)


def create_app_schema(url: str) -> None:
    """The app's DDL, run as the app runs it, on an empty database."""
    conn = psycopg2.connect(libpq_dsn(url))
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(APP_SCHEMA_SQL.read_text())
    conn.close()


@dataclass
class ReEnded:
    call_id: int
    status_before: str  # what the app's end-call overwrote
    status: str  # what it wrote
    coins_spent: int


@dataclass
class LostDebit:
    wallet_id: int
    coins: int  # the balance the top-up read minus the balance it overwrote


@dataclass
class SimulatedApp:
    url: str
    ended: list[ReEnded] = field(default_factory=list)
    lost_debits: list[LostDebit] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.conn = psycopg2.connect(libpq_dsn(self.url))
        self.conn.autocommit = True

    def close(self) -> None:
        self.conn.close()

    def _one(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        with self.conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()

    def _run(self, sql: str, params: dict[str, Any] | None = None) -> None:
        with self.conn.cursor() as cursor:
            cursor.execute(sql, params)

    # --- accounts ---------------------------------------------------------------------

    def sign_up(self, n: int, role: str) -> int:
        """A user with a role, an empty wallet and a presence row (online now)."""
        (user_id,) = self._one(
            "INSERT INTO users (username, dob, phone) VALUES (%(name)s, %(dob)s, %(phone)s) "
            "RETURNING user_id",
            {"name": f"app{n}", "dob": date(1995, 5, 5), "phone": f"+9199{n:08d}"},
        )
        self._run(
            "INSERT INTO user_roles (user_id, role) VALUES (%(u)s, %(role)s)",
            {"u": user_id, "role": role},
        )
        self._run("INSERT INTO user_wallets (user_id) VALUES (%(u)s)", {"u": user_id})
        self._run(
            "INSERT INTO user_status (user_id, is_online, last_seen) VALUES (%(u)s, TRUE, now())",
            {"u": user_id},
        )
        return int(user_id)

    def wallet_id(self, user_id: int) -> int:
        return int(
            self._one("SELECT wallet_id FROM user_wallets WHERE user_id = %(u)s", {"u": user_id})[0]
        )

    def purchase(self, user_id: int, coins: int, rupees: Decimal) -> None:
        """Coins bought: coins_change = the coins, money_change = the rupees paid."""
        (wallet_id,) = self._one(
            "UPDATE user_wallets SET balance_coins = balance_coins + %(c)s, updated_at = now() "
            "WHERE user_id = %(u)s RETURNING wallet_id",
            {"c": coins, "u": user_id},
        )
        self._ledger(wallet_id, "purchase", coins, rupees)

    def top_up(self, user_id: int, coins: int, rupees: Decimal, *, pause: float) -> None:
        """The app's top-up: read the balance, later write back read + coins."""
        wallet_id, read = self._one(
            "SELECT wallet_id, balance_coins FROM user_wallets WHERE user_id = %(u)s",
            {"u": user_id},
        )
        time.sleep(pause)
        with self.conn.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(
                "SELECT balance_coins FROM user_wallets WHERE wallet_id = %(w)s FOR UPDATE",
                {"w": wallet_id},
            )
            (overwritten,) = cursor.fetchone()
            cursor.execute(
                "UPDATE user_wallets SET balance_coins = %(b)s, updated_at = now() "
                "WHERE wallet_id = %(w)s",
                {"b": read + coins, "w": wallet_id},
            )
            cursor.execute("COMMIT")
        self._ledger(wallet_id, "purchase", coins, rupees)
        if overwritten != read:
            self.lost_debits.append(LostDebit(wallet_id, read - overwritten))

    def _ledger(self, wallet_id: int, tx_type: str, coins: int, rupees: Decimal) -> None:
        self._run(
            "INSERT INTO user_transactions (wallet_id, tx_type, coins_change, money_change) "
            "VALUES (%(w)s, %(t)s, %(c)s, %(m)s)",
            {"w": wallet_id, "t": tx_type, "c": coins, "m": rupees},
        )

    # --- calls ------------------------------------------------------------------------

    def start_call(
        self, caller: int, listener: int, call_type: str = "audio", *, started_ago: float = 0
    ) -> int | None:
        """The first minute is charged at start, with a 'spend' row; None when the caller
        cannot pay it. `started_ago`: the call began that many seconds ago (a test that
        cannot wait for minutes to pass)."""
        rate = COINS_PER_MINUTE[call_type]
        row = self._one(
            "UPDATE user_wallets SET balance_coins = balance_coins - %(r)s, updated_at = now() "
            "WHERE user_id = %(u)s AND balance_coins >= %(r)s RETURNING wallet_id, balance_coins",
            {"r": rate, "u": caller},
        )
        if row is None:
            return None
        wallet_id, balance = row
        self._ledger(wallet_id, "spend", -rate, Decimal("0.00"))
        (call_id,) = self._one(
            "INSERT INTO user_calls (user_id, listener_id, call_type, start_time, coins_spent) "
            "VALUES (%(u)s, %(l)s, %(t)s, now() - make_interval(secs => %(ago)s), %(r)s) "
            "RETURNING call_id",
            {"u": caller, "l": listener, "t": call_type, "ago": started_ago, "r": rate},
        )
        self._run(
            "UPDATE user_status SET is_busy = TRUE, wait_time = %(w)s, last_seen = now() "
            "WHERE user_id = %(u)s",
            {"w": balance // rate + 1, "u": caller},
        )
        self._run(
            "UPDATE user_status SET is_busy = TRUE, last_seen = now() WHERE user_id = %(l)s",
            {"l": listener},
        )
        return int(call_id)

    def wait_time_up(self, caller: int) -> None:
        """The app's signal that the caller's affordable time has run out."""
        self._run("UPDATE user_status SET wait_time = 0 WHERE user_id = %(u)s", {"u": caller})

    def end_call(self, call_id: int, reason: str = "completed") -> ReEnded:
        """The app's end-call: the final status is the client's `reason` ('completed',
        'dropped', or 'ongoing', which sets end_time and pays but leaves the call ongoing);
        no status guard; the listener is paid int(rate * paid minutes) coins."""
        with self.conn.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(
                "SELECT status, listener_id, call_type, coins_spent FROM user_calls "
                "WHERE call_id = %(c)s FOR UPDATE",
                {"c": call_id},
            )
            status_before, listener, call_type, coins_spent = cursor.fetchone()
            paid_minutes = coins_spent // COINS_PER_MINUTE[call_type]
            earned = int(LISTENER_RATE[call_type] * paid_minutes)
            cursor.execute(
                "UPDATE user_calls SET end_time = now(), status = %(s)s, "
                "duration_seconds = extract(epoch FROM now() - start_time)::int, "
                "duration_minutes = greatest(1, extract(epoch FROM now() - start_time)::int / 60), "
                "listener_money_earned = %(e)s, updated_at = now() WHERE call_id = %(c)s",
                {"s": reason, "e": earned, "c": call_id},
            )
            cursor.execute("COMMIT")
        if earned:
            (wallet_id,) = self._one(
                "UPDATE user_wallets SET balance_coins = balance_coins + %(e)s, "
                "updated_at = now() WHERE user_id = %(l)s RETURNING wallet_id",
                {"e": earned, "l": listener},
            )
            self._ledger(wallet_id, "earn", earned, Decimal("0.00"))
        ended = ReEnded(call_id, status_before, reason, coins_spent)
        self.ended.append(ended)
        return ended
