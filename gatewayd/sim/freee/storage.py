"""SQLite state of the emulator: companies, masters, deals, transfers, OAuth, counters.

Why SQLite: the state survives restarts, and other processes (tests, the demo) can read it
while the emulator runs (WAL). One connection per Store, guarded by a lock: the server's
event loop and a test thread may both use the same Store.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gatewayd.sim.freee import seed

SCHEMA_VERSION = "1"

_DDL = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters(kind TEXT PRIMARY KEY, next_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS companies(id INTEGER PRIMARY KEY, profile TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS memberships(
  user_id INTEGER NOT NULL, company_id INTEGER NOT NULL, role TEXT NOT NULL,
  PRIMARY KEY(user_id, company_id));
CREATE TABLE IF NOT EXISTS fiscal_years(
  id INTEGER PRIMARY KEY, company_id INTEGER NOT NULL, start_date TEXT NOT NULL,
  end_date TEXT NOT NULL, is_closed INTEGER NOT NULL DEFAULT 0, month_end_date TEXT,
  temp_month_end_date TEXT, settings TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS taxes(
  company_id INTEGER NOT NULL, code INTEGER NOT NULL, name TEXT NOT NULL,
  name_ja TEXT NOT NULL, display_category TEXT, available INTEGER NOT NULL,
  valid_from TEXT, valid_to TEXT, PRIMARY KEY(company_id, code));
CREATE TABLE IF NOT EXISTS account_items(
  id INTEGER PRIMARY KEY, company_id INTEGER NOT NULL, name TEXT NOT NULL,
  account_category TEXT NOT NULL, account_category_id INTEGER NOT NULL,
  categories TEXT NOT NULL, tax_code INTEGER NOT NULL, group_name TEXT,
  shortcut TEXT, shortcut_num TEXT, walletable_id INTEGER, available INTEGER NOT NULL,
  update_date TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS walletables(
  id INTEGER PRIMARY KEY, company_id INTEGER NOT NULL, name TEXT NOT NULL,
  type TEXT NOT NULL, bank_id INTEGER, update_date TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS masters(
  id INTEGER PRIMARY KEY, company_id INTEGER NOT NULL, kind TEXT NOT NULL,
  name TEXT NOT NULL, code TEXT, shortcut1 TEXT, shortcut2 TEXT,
  available INTEGER NOT NULL DEFAULT 1, extra TEXT NOT NULL DEFAULT '{}',
  update_date TEXT NOT NULL, UNIQUE(company_id, kind, name));
CREATE TABLE IF NOT EXISTS deals(
  id INTEGER PRIMARY KEY, company_id INTEGER NOT NULL, issue_date TEXT NOT NULL,
  due_date TEXT, type TEXT NOT NULL, partner_id INTEGER, ref_number TEXT,
  amount INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS deals_by_date ON deals(company_id, issue_date);
CREATE TABLE IF NOT EXISTS deal_details(
  id INTEGER PRIMARY KEY, deal_id INTEGER NOT NULL REFERENCES deals(id) ON DELETE CASCADE,
  position INTEGER NOT NULL, account_item_id INTEGER NOT NULL, tax_code INTEGER NOT NULL,
  amount INTEGER NOT NULL, vat INTEGER NOT NULL, item_id INTEGER, section_id INTEGER,
  partner_id INTEGER, tag_ids TEXT NOT NULL, description TEXT NOT NULL,
  entry_side TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS details_by_deal ON deal_details(deal_id);
CREATE TABLE IF NOT EXISTS deal_payments(
  id INTEGER PRIMARY KEY, deal_id INTEGER NOT NULL REFERENCES deals(id) ON DELETE CASCADE,
  date TEXT NOT NULL, from_walletable_type TEXT NOT NULL,
  from_walletable_id INTEGER NOT NULL, amount INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS payments_by_deal ON deal_payments(deal_id);
CREATE TABLE IF NOT EXISTS transfers(
  id INTEGER PRIMARY KEY, company_id INTEGER NOT NULL, date TEXT NOT NULL,
  from_walletable_type TEXT NOT NULL, from_walletable_id INTEGER NOT NULL,
  destinations TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS oauth_clients(
  client_id TEXT PRIMARY KEY, client_secret TEXT NOT NULL, name TEXT NOT NULL,
  scopes TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS auth_codes(
  code TEXT PRIMARY KEY, client_id TEXT NOT NULL, user_id INTEGER NOT NULL,
  company_id INTEGER, redirect_uri TEXT NOT NULL, scope TEXT NOT NULL,
  code_challenge TEXT, code_challenge_method TEXT, expires_at REAL NOT NULL,
  used INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS tokens(
  token TEXT PRIMARY KEY, kind TEXT NOT NULL, client_id TEXT NOT NULL,
  user_id INTEGER NOT NULL, company_id INTEGER, scope TEXT NOT NULL, grant_id TEXT NOT NULL,
  issued_at REAL NOT NULL, expires_at REAL NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,
  used INTEGER NOT NULL DEFAULT 0, pair TEXT);
CREATE TABLE IF NOT EXISTS request_counts(
  endpoint TEXT NOT NULL, status TEXT NOT NULL, count INTEGER NOT NULL,
  PRIMARY KEY(endpoint, status));
CREATE TABLE IF NOT EXISTS quota_counts(
  company_id INTEGER NOT NULL, client_id TEXT NOT NULL, day TEXT NOT NULL,
  count INTEGER NOT NULL, PRIMARY KEY(company_id, client_id, day));
"""

# Tables cleared by a reset of business data (OAuth state is kept unless asked).
_BUSINESS_TABLES = (
    "counters", "companies", "memberships", "fiscal_years", "taxes", "account_items",
    "walletables", "masters", "deal_payments", "deal_details", "deals", "transfers",
    "request_counts", "quota_counts",
)
_OAUTH_TABLES = ("auth_codes", "tokens")

Row = dict[str, Any]


class Store:
    """The emulator's SQLite database. Methods taking ``db`` run inside ``transaction()``."""

    def __init__(self, path: str | Path, today: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None, timeout=10
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        with self.transaction() as db:
            db.executescript_safe(_DDL)
            if db.one("SELECT value FROM meta WHERE key='seeded'") is None:
                self._seed(db, today)
                db.execute("INSERT INTO meta(key, value) VALUES('seeded', ?)", (today,))
                db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', ?)",
                    (SCHEMA_VERSION,),
                )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[Db]:
        """One atomic unit of work (BEGIN IMMEDIATE ... COMMIT, rolled back on error)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield Db(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def reset(self, today: str, *, tokens: bool = False) -> None:
        """Back to the seed; OAuth clients always stay, tokens stay unless ``tokens``."""
        with self.transaction() as db:
            for table in _BUSINESS_TABLES + (_OAUTH_TABLES if tokens else ()):
                db.execute(f"DELETE FROM {table}")
            self._seed(db, today)

    # -- seeding ------------------------------------------------------------------------

    def _seed(self, db: Db, today: str) -> None:
        for kind, start in seed.ID_STARTS.items():
            db.execute("INSERT OR REPLACE INTO counters(kind, next_id) VALUES(?, ?)", (kind, start))
        for company in seed.COMPANIES:
            profile = dict(company.profile)
            db.execute(
                "INSERT INTO companies(id, profile) VALUES(?, ?)",
                (company.id, json.dumps(profile, ensure_ascii=False)),
            )
            db.execute(
                "INSERT INTO memberships(user_id, company_id, role) VALUES(?, ?, ?)",
                (seed.USER_ID, company.id, company.role),
            )
            for fiscal_year in company.fiscal_years:
                db.insert_fiscal_year(company.id, fiscal_year)
            for tax in seed.TAXES:
                db.execute(
                    "INSERT INTO taxes(company_id, code, name, name_ja, display_category,"
                    " available, valid_from, valid_to) VALUES(?,?,?,?,?,?,?,?)",
                    (company.id, tax.code, tax.name, tax.name_ja, tax.display_category,
                     int(tax.available), tax.valid_from, tax.valid_to),
                )
            wallet_ids: dict[str, int] = {}
            for wallet in company.walletables:
                wallet_id = db.next_id("walletable")
                wallet_ids[wallet.name] = wallet_id
                db.execute(
                    "INSERT INTO walletables(id, company_id, name, type, bank_id, update_date)"
                    " VALUES(?,?,?,?,?,?)",
                    (wallet_id, company.id, wallet.name, wallet.type, wallet.bank_id, today),
                )
            for account in seed.ACCOUNT_ITEMS:
                db.execute(
                    "INSERT INTO account_items(id, company_id, name, account_category,"
                    " account_category_id, categories, tax_code, group_name, shortcut,"
                    " shortcut_num, walletable_id, available, update_date)"
                    " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (db.next_id("account_item"), company.id, account.name, account.category,
                     account.category_id, json.dumps(list(account.categories), ensure_ascii=False),
                     account.tax_code, account.group_name, account.shortcut,
                     account.shortcut_num, wallet_ids.get(account.walletable or ""), 1, today),
                )
            for kind, names in (("section", company.sections), ("tag", company.tags),
                                ("partner", company.partners), ("item", company.items)):
                for name in names:
                    db.insert_master(company.id, kind, {"name": name}, today)

    # -- reads outside a transaction (consistent snapshot per call) ----------------------

    def read(self) -> Db:
        """A handle for single read statements (each statement is its own snapshot)."""
        return Db(self._conn, self._lock)


class Db:
    """Thin helpers over one connection; every method is one or a few SQL statements."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock | None = None) -> None:
        self._conn = conn
        self._lock = lock

    def _run(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        if self._lock is not None:
            with self._lock:
                return self._conn.execute(sql, tuple(params))
        return self._conn.execute(sql, tuple(params))

    def executescript_safe(self, script: str) -> None:
        for statement in script.split(";"):
            if statement.strip():
                self._run(statement)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = self._run(sql, params)
        return cursor.rowcount

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        if self._lock is not None:
            with self._lock:
                row = self._conn.execute(sql, tuple(params)).fetchone()
        else:
            row = self._conn.execute(sql, tuple(params)).fetchone()
        return dict(row) if row is not None else None

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        if self._lock is not None:
            with self._lock:
                rows = self._conn.execute(sql, tuple(params)).fetchall()
        else:
            rows = self._conn.execute(sql, tuple(params)).fetchall()
        return [dict(row) for row in rows]

    def next_id(self, kind: str) -> int:
        row = self.one("SELECT next_id FROM counters WHERE kind=?", (kind,))
        value = int(row["next_id"]) if row else seed.ID_STARTS.get(kind, 1)
        self.execute(
            "INSERT OR REPLACE INTO counters(kind, next_id) VALUES(?, ?)", (kind, value + 1)
        )
        return value

    # -- companies and users ------------------------------------------------------------

    def company_profile(self, company_id: int) -> Row | None:
        row = self.one("SELECT profile FROM companies WHERE id=?", (company_id,))
        return json.loads(row["profile"]) if row else None

    def company_ids(self) -> list[int]:
        return [int(r["id"]) for r in self.all("SELECT id FROM companies ORDER BY id")]

    def memberships(self, user_id: int) -> list[Row]:
        return self.all(
            "SELECT company_id, role FROM memberships WHERE user_id=? ORDER BY company_id",
            (user_id,),
        )

    def role(self, user_id: int, company_id: int) -> str | None:
        row = self.one(
            "SELECT role FROM memberships WHERE user_id=? AND company_id=?", (user_id, company_id)
        )
        return str(row["role"]) if row else None

    def set_role(self, user_id: int, company_id: int, role: str) -> None:
        self.execute(
            "INSERT OR REPLACE INTO memberships(user_id, company_id, role) VALUES(?,?,?)",
            (user_id, company_id, role),
        )

    # -- fiscal years -------------------------------------------------------------------

    def insert_fiscal_year(self, company_id: int, fields: Row) -> int:
        fiscal_id = self.next_id("fiscal_year")
        settings = {
            k: v
            for k, v in fields.items()
            if k not in {"start_date", "end_date", "is_closed", "month_end_date",
                         "temp_month_end_date", "id"}
        }
        self.execute(
            "INSERT INTO fiscal_years(id, company_id, start_date, end_date, is_closed,"
            " month_end_date, temp_month_end_date, settings) VALUES(?,?,?,?,?,?,?,?)",
            (fiscal_id, company_id, fields["start_date"], fields["end_date"],
             int(bool(fields.get("is_closed", False))), fields.get("month_end_date"),
             fields.get("temp_month_end_date"), json.dumps(settings)),
        )
        return fiscal_id

    def fiscal_years(self, company_id: int) -> list[Row]:
        rows = self.all(
            "SELECT * FROM fiscal_years WHERE company_id=? ORDER BY start_date", (company_id,)
        )
        result = []
        for row in rows:
            settings = json.loads(row.pop("settings"))
            row.pop("company_id")
            row["is_closed"] = bool(row["is_closed"])
            result.append({**settings, **row})
        return result

    def update_fiscal_year(self, company_id: int, fiscal_id: int, fields: Row) -> bool:
        current = next((f for f in self.fiscal_years(company_id) if f["id"] == fiscal_id), None)
        if current is None:
            return False
        merged = {**current, **fields}
        self.execute("DELETE FROM fiscal_years WHERE id=?", (fiscal_id,))
        settings = {
            k: v
            for k, v in merged.items()
            if k not in {"start_date", "end_date", "is_closed", "month_end_date",
                         "temp_month_end_date", "id"}
        }
        self.execute(
            "INSERT INTO fiscal_years(id, company_id, start_date, end_date, is_closed,"
            " month_end_date, temp_month_end_date, settings) VALUES(?,?,?,?,?,?,?,?)",
            (fiscal_id, company_id, merged["start_date"], merged["end_date"],
             int(bool(merged["is_closed"])), merged.get("month_end_date"),
             merged.get("temp_month_end_date"), json.dumps(settings)),
        )
        return True

    # -- masters ------------------------------------------------------------------------

    def taxes(self, company_id: int) -> list[Row]:
        rows = self.all("SELECT * FROM taxes WHERE company_id=? ORDER BY code", (company_id,))
        for row in rows:
            row["available"] = bool(row["available"])
        return rows

    def set_tax_available(self, company_id: int, code: int, available: bool) -> bool:
        return (
            self.execute(
                "UPDATE taxes SET available=? WHERE company_id=? AND code=?",
                (int(available), company_id, code),
            )
            > 0
        )

    def account_items(self, company_id: int) -> list[Row]:
        rows = self.all(
            "SELECT * FROM account_items WHERE company_id=? ORDER BY id", (company_id,)
        )
        for row in rows:
            row["categories"] = json.loads(row["categories"])
            row["available"] = bool(row["available"])
        return rows

    def walletables(self, company_id: int) -> list[Row]:
        return self.all("SELECT * FROM walletables WHERE company_id=? ORDER BY id", (company_id,))

    def insert_master(self, company_id: int, kind: str, fields: Row, today: str) -> int:
        """Insert an item/section/tag/partner; raises ``sqlite3.IntegrityError`` on a
        duplicate name."""
        master_id = self.next_id(kind)
        extra = {
            k: v
            for k, v in fields.items()
            if k not in {"name", "code", "shortcut1", "shortcut2", "company_id"}
        }
        self.execute(
            "INSERT INTO masters(id, company_id, kind, name, code, shortcut1, shortcut2,"
            " available, extra, update_date) VALUES(?,?,?,?,?,?,?,?,?,?)",
            (master_id, company_id, kind, fields["name"], fields.get("code"),
             fields.get("shortcut1"), fields.get("shortcut2"), 1,
             json.dumps(extra, ensure_ascii=False), today),
        )
        return master_id

    def masters(self, company_id: int, kind: str) -> list[Row]:
        rows = self.all(
            "SELECT * FROM masters WHERE company_id=? AND kind=? ORDER BY id", (company_id, kind)
        )
        for row in rows:
            row["available"] = bool(row["available"])
            row["extra"] = json.loads(row["extra"])
        return rows

    # -- deals --------------------------------------------------------------------------

    def insert_deal(self, deal: Row, details: list[Row], payments: list[Row], now: str) -> int:
        deal_id = self.next_id("deal")
        self.execute(
            "INSERT INTO deals(id, company_id, issue_date, due_date, type, partner_id,"
            " ref_number, amount, created_at, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?)",
            (deal_id, deal["company_id"], deal["issue_date"], deal.get("due_date"),
             deal["type"], deal.get("partner_id"), deal.get("ref_number"), deal["amount"],
             now, now),
        )
        self.replace_details(deal_id, details)
        for payment in payments:
            self.insert_payment(deal_id, payment)
        return deal_id

    def update_deal(self, deal_id: int, deal: Row, details: list[Row], now: str) -> None:
        self.execute(
            "UPDATE deals SET issue_date=?, due_date=?, type=?, partner_id=?, ref_number=?,"
            " amount=?, updated_at=? WHERE id=?",
            (deal["issue_date"], deal.get("due_date"), deal["type"], deal.get("partner_id"),
             deal.get("ref_number"), deal["amount"], now, deal_id),
        )
        self.replace_details(deal_id, details)

    def replace_details(self, deal_id: int, details: list[Row]) -> None:
        """Replace the lines of a deal; a line with an ``id`` keeps it, others get new ids."""
        self.execute("DELETE FROM deal_details WHERE deal_id=?", (deal_id,))
        for position, line in enumerate(details):
            line_id = line.get("id") or self.next_id("detail")
            self.execute(
                "INSERT INTO deal_details(id, deal_id, position, account_item_id, tax_code,"
                " amount, vat, item_id, section_id, partner_id, tag_ids, description,"
                " entry_side) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (line_id, deal_id, position, line["account_item_id"], line["tax_code"],
                 line["amount"], line["vat"], line.get("item_id"), line.get("section_id"),
                 line.get("partner_id"), json.dumps(line.get("tag_ids") or []),
                 line.get("description") or "", line["entry_side"]),
            )

    def insert_payment(self, deal_id: int, payment: Row) -> int:
        payment_id = self.next_id("payment")
        self.execute(
            "INSERT INTO deal_payments(id, deal_id, date, from_walletable_type,"
            " from_walletable_id, amount) VALUES(?,?,?,?,?,?)",
            (payment_id, deal_id, payment["date"], payment["from_walletable_type"],
             payment["from_walletable_id"], payment["amount"]),
        )
        return payment_id

    def update_payment(self, payment_id: int, payment: Row) -> None:
        self.execute(
            "UPDATE deal_payments SET date=?, from_walletable_type=?, from_walletable_id=?,"
            " amount=? WHERE id=?",
            (payment["date"], payment["from_walletable_type"], payment["from_walletable_id"],
             payment["amount"], payment_id),
        )

    def delete_payment(self, payment_id: int) -> None:
        self.execute("DELETE FROM deal_payments WHERE id=?", (payment_id,))

    def delete_deal(self, deal_id: int) -> None:
        self.execute("DELETE FROM deals WHERE id=?", (deal_id,))

    def deal(self, company_id: int, deal_id: int) -> Row | None:
        rows = self.deals_where("d.company_id=? AND d.id=?", (company_id, deal_id))
        return rows[0] if rows else None

    def deals(self, company_id: int | None = None) -> list[Row]:
        if company_id is None:
            return self.deals_where("1=1", ())
        return self.deals_where("d.company_id=?", (company_id,))

    def deals_where(self, where: str, params: Sequence[Any]) -> list[Row]:
        """Deals with their ``details`` and ``payments`` (ordered by issue_date, id)."""
        deals = self.all(
            f"SELECT d.* FROM deals d WHERE {where} ORDER BY d.issue_date, d.id", params
        )
        if not deals:
            return []
        ids = [d["id"] for d in deals]
        marks = ",".join("?" * len(ids))
        details: dict[int, list[Row]] = {i: [] for i in ids}
        for line in self.all(
            f"SELECT * FROM deal_details WHERE deal_id IN ({marks}) ORDER BY deal_id, position",
            ids,
        ):
            line["tag_ids"] = json.loads(line["tag_ids"])
            details[line["deal_id"]].append(line)
        payments: dict[int, list[Row]] = {i: [] for i in ids}
        for payment in self.all(
            f"SELECT * FROM deal_payments WHERE deal_id IN ({marks}) ORDER BY deal_id, id", ids
        ):
            payments[payment["deal_id"]].append(payment)
        for deal in deals:
            deal["details"] = details[deal["id"]]
            deal["payments"] = payments[deal["id"]]
        return deals

    # -- transfers ----------------------------------------------------------------------

    def insert_transfer(self, transfer: Row, now: str) -> int:
        transfer_id = self.next_id("transfer")
        self.execute(
            "INSERT INTO transfers(id, company_id, date, from_walletable_type,"
            " from_walletable_id, destinations, created_at) VALUES(?,?,?,?,?,?,?)",
            (transfer_id, transfer["company_id"], transfer["date"],
             transfer["from_walletable_type"], transfer["from_walletable_id"],
             json.dumps(transfer["destinations"], ensure_ascii=False), now),
        )
        return transfer_id

    def transfers(self, company_id: int | None = None) -> list[Row]:
        if company_id is None:
            rows = self.all("SELECT * FROM transfers ORDER BY date, id")
        else:
            rows = self.all(
                "SELECT * FROM transfers WHERE company_id=? ORDER BY date, id", (company_id,)
            )
        for row in rows:
            row["destinations"] = json.loads(row["destinations"])
        return rows

    def delete_transfer(self, transfer_id: int) -> None:
        self.execute("DELETE FROM transfers WHERE id=?", (transfer_id,))

    # -- OAuth --------------------------------------------------------------------------

    def upsert_client(self, client_id: str, secret: str, name: str, scopes: str) -> None:
        self.execute(
            "INSERT INTO oauth_clients(client_id, client_secret, name, scopes) VALUES(?,?,?,?)"
            " ON CONFLICT(client_id) DO UPDATE SET client_secret=excluded.client_secret,"
            " name=excluded.name",
            (client_id, secret, name, scopes),
        )

    def client(self, client_id: str) -> Row | None:
        return self.one("SELECT * FROM oauth_clients WHERE client_id=?", (client_id,))

    def set_client_scopes(self, client_id: str, scopes: str) -> bool:
        return (
            self.execute(
                "UPDATE oauth_clients SET scopes=? WHERE client_id=?", (scopes, client_id)
            )
            > 0
        )

    # -- counters of requests and quota ------------------------------------------------

    def count_request(self, endpoint: str, status: str) -> None:
        self.execute(
            "INSERT INTO request_counts(endpoint, status, count) VALUES(?,?,1)"
            " ON CONFLICT(endpoint, status) DO UPDATE SET count=count+1",
            (endpoint, status),
        )

    def request_counts(self) -> list[Row]:
        return self.all("SELECT * FROM request_counts ORDER BY endpoint, status")

    def bump_quota(self, company_id: int, client_id: str, day: str) -> int:
        self.execute(
            "INSERT INTO quota_counts(company_id, client_id, day, count) VALUES(?,?,?,1)"
            " ON CONFLICT(company_id, client_id, day) DO UPDATE SET count=count+1",
            (company_id, client_id, day),
        )
        row = self.one(
            "SELECT count FROM quota_counts WHERE company_id=? AND client_id=? AND day=?",
            (company_id, client_id, day),
        )
        return int(row["count"]) if row else 0
