"""The plan of one business day: what it will post to freee会計, by master *names*.

freee-mapping.md sections 1 and 8. Mapping (``gatewayd.sync.mapping``) builds these values;
name resolution and delivery consume them. Everything here is immutable and pure; ``to_json``
gives exactly section 8's JSON value (dicts, lists, str, int, None) and ``from_json`` reads it
back, so a plan can be stored (outbox) and compared as a JSON value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from gatewayd.protocol.records import METHOD_ORDER, TAX_CLASS_ORDER, Method, TaxClass

JsonObject = dict[str, Any]


class Granularity(StrEnum):
    """How sales become deals (section 3.2)."""

    SUMMARY = "summary"
    RECEIPT = "receipt"
    DAY = "day"


class PlanStatus(StrEnum):
    READY = "ready"
    HELD = "held"


class PostingKind(StrEnum):
    DEAL = "deal"  # POST /api/1/deals
    TRANSFER = "transfer"  # POST /api/1/transfers


class DealType(StrEnum):
    INCOME = "income"
    EXPENSE = "expense"


def folded_amount(posting: Mapping[str, Any] | None) -> int:
    """The net of the lines a `day` sales deal carries besides its sales (the cash difference
    and the folded movements: the lines without 品目), from a posting's JSON (section 3.2)."""
    if not posting:
        return 0
    return sum(int(d["amount"]) for d in posting.get("details") or [] if d.get("item") is None)


def ref_number(store_code: str, terminal_no: str, business_date: date, suffix: str) -> str:
    """``POS-{store_code}-{terminal_no}-{YYYYMMDD}-{suffix}``: the exactly-once key (section 3)."""
    return f"POS-{store_code}-{terminal_no}-{business_date:%Y%m%d}-{suffix}"


@dataclass(frozen=True, slots=True)
class DetailLine:
    """One 明細行 of a deal. ``amount`` is tax-included; ``vat`` None lets freee compute it."""

    account_item: str
    tax: str
    amount: int
    vat: int | None
    item: str | None
    section: str | None
    tags: tuple[str, ...]
    description: str

    def to_json(self) -> JsonObject:
        return {
            "account_item": self.account_item,
            "tax": self.tax,
            "amount": self.amount,
            "vat": self.vat,
            "item": self.item,
            "section": self.section,
            "tags": list(self.tags),
            "description": self.description,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DetailLine:
        return cls(
            account_item=data["account_item"],
            tax=data["tax"],
            amount=int(data["amount"]),
            vat=None if data["vat"] is None else int(data["vat"]),
            item=data["item"],
            section=data["section"],
            tags=tuple(data["tags"]),
            description=data["description"],
        )


@dataclass(frozen=True, slots=True)
class PaymentLine:
    """One 支払行: the deal is settled (partly) from/into ``walletable`` (a 口座 name)."""

    date: date
    walletable: str
    amount: int

    def to_json(self) -> JsonObject:
        return {"date": self.date.isoformat(), "walletable": self.walletable, "amount": self.amount}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PaymentLine:
        return cls(
            date=date.fromisoformat(data["date"]),
            walletable=data["walletable"],
            amount=int(data["amount"]),
        )


@dataclass(frozen=True, slots=True)
class TransferPlan:
    """A 口座振替 (POST /api/1/transfers); the description ends in the posting's ref_number."""

    date: date
    from_walletable: str
    to_walletable: str
    amount: int
    description: str

    def to_json(self) -> JsonObject:
        return {
            "date": self.date.isoformat(),
            "from": self.from_walletable,
            "to": self.to_walletable,
            "amount": self.amount,
            "description": self.description,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TransferPlan:
        return cls(
            date=date.fromisoformat(data["date"]),
            from_walletable=data["from"],
            to_walletable=data["to"],
            amount=int(data["amount"]),
            description=data["description"],
        )


@dataclass(frozen=True, slots=True)
class Posting:
    """One deal or transfer of a day, keyed by ``ref_number``.

    A deal has ``type``, ``details`` and maybe ``payments`` (none: 未決済), ``transfer`` None.
    A transfer has ``type``/``due_date``/``partner`` None, no details or payments.
    """

    ref_number: str
    kind: PostingKind
    type: DealType | None
    issue_date: date
    due_date: date | None
    partner: str | None
    details: tuple[DetailLine, ...]
    payments: tuple[PaymentLine, ...]
    transfer: TransferPlan | None

    @property
    def amount(self) -> int:
        """The deal total (sum of lines, tax included) or the transfer's amount."""
        if self.transfer is not None:
            return self.transfer.amount
        return sum(line.amount for line in self.details)

    @property
    def paid(self) -> int:
        """The sum of the payments (deal total when settled, 0 when unsettled)."""
        return sum(p.amount for p in self.payments)

    def to_json(self) -> JsonObject:
        return {
            "ref_number": self.ref_number,
            "kind": self.kind.value,
            "type": None if self.type is None else self.type.value,
            "issue_date": self.issue_date.isoformat(),
            "due_date": None if self.due_date is None else self.due_date.isoformat(),
            "partner": self.partner,
            "details": [d.to_json() for d in self.details],
            "payments": [p.to_json() for p in self.payments],
            "transfer": None if self.transfer is None else self.transfer.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Posting:
        return cls(
            ref_number=data["ref_number"],
            kind=PostingKind(data["kind"]),
            type=None if data["type"] is None else DealType(data["type"]),
            issue_date=date.fromisoformat(data["issue_date"]),
            due_date=None if data["due_date"] is None else date.fromisoformat(data["due_date"]),
            partner=data["partner"],
            details=tuple(DetailLine.from_json(d) for d in data["details"]),
            payments=tuple(PaymentLine.from_json(p) for p in data["payments"]),
            transfer=None if data["transfer"] is None else TransferPlan.from_json(data["transfer"]),
        )


@dataclass(frozen=True, slots=True)
class DayTotals:
    """Sums of the day's records (TRAINING excluded), or the Z's figures with ``tax`` None.

    ``by_class`` and ``by_method`` hold every class / method (0 where absent).
    """

    gross: int
    tax: int | None
    by_class: Mapping[TaxClass, int]
    by_method: Mapping[Method, int]

    def to_json(self) -> JsonObject:
        return {
            "gross": self.gross,
            "tax": self.tax,
            "by_class": {c.value: int(self.by_class.get(c, 0)) for c in TAX_CLASS_ORDER},
            "by_method": {m.value: int(self.by_method.get(m, 0)) for m in METHOD_ORDER},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DayTotals:
        return cls(
            gross=int(data["gross"]),
            tax=None if data["tax"] is None else int(data["tax"]),
            by_class={c: int(data["by_class"].get(c.value, 0)) for c in TAX_CLASS_ORDER},
            by_method={m: int(data["by_method"].get(m.value, 0)) for m in METHOD_ORDER},
        )


@dataclass(frozen=True, slots=True)
class DayPlan:
    """The plan of one register's business day (section 8).

    ``status`` held ⇒ ``reason`` set and ``postings`` empty. ``granularity`` is the one used
    (a ``day`` that one deal cannot express falls back to ``summary``; ``fallback`` then says
    why, for logs and the status page — it is not part of section 8's JSON).
    """

    store_code: str
    terminal_no: str
    business_date: date
    close_no: int
    status: PlanStatus
    reason: str | None
    granularity: Granularity
    totals: DayTotals
    postings: tuple[Posting, ...]
    fallback: str | None = None

    @property
    def ready(self) -> bool:
        return self.status is PlanStatus.READY

    def posting(self, ref: str) -> Posting | None:
        for p in self.postings:
            if p.ref_number == ref:
                return p
        return None

    def to_json(self) -> JsonObject:
        return {
            "store_code": self.store_code,
            "terminal_no": self.terminal_no,
            "business_date": self.business_date.isoformat(),
            "close_no": self.close_no,
            "status": self.status.value,
            "reason": self.reason,
            "granularity": self.granularity.value,
            "totals": self.totals.to_json(),
            "postings": [p.to_json() for p in self.postings],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DayPlan:
        return cls(
            store_code=data["store_code"],
            terminal_no=data["terminal_no"],
            business_date=date.fromisoformat(data["business_date"]),
            close_no=int(data["close_no"]),
            status=PlanStatus(data["status"]),
            reason=data["reason"],
            granularity=Granularity(data["granularity"]),
            totals=DayTotals.from_json(data["totals"]),
            postings=tuple(Posting.from_json(p) for p in data["postings"]),
        )
