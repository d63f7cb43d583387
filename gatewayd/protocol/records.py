"""Typed journal records of REGLINK/1 (register-link.md section 5) and the assembled day.

Types only: parsing lives in ``journal_parser``, assembly and checks in ``days``. Money is
integer yen, quantities are ``Decimal``; every record keeps its record number so that a held
day's reason can name the records involved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum


class TaxClass(StrEnum):
    STANDARD = "10"
    REDUCED = "8R"
    EXEMPT = "0"
    OUT_OF_SCOPE = "EX"


class Method(StrEnum):
    CASH = "CASH"
    CREDIT = "CREDIT"
    EMONEY = "EMONEY"
    QR = "QR"
    GIFT = "GIFT"
    POINT = "POINT"
    OTHER = "OTHER"


class Kind(StrEnum):
    SALE = "SALE"
    VOID = "VOID"
    RETURN = "RETURN"
    TRAINING = "TRAINING"


class TaxMode(StrEnum):
    IN = "IN"
    OUT = "OUT"


class Direction(StrEnum):
    IN = "IN"
    OUT = "OUT"


TAX_CLASS_ORDER: tuple[TaxClass, ...] = tuple(TaxClass)
METHOD_ORDER: tuple[Method, ...] = tuple(Method)
DIRECTION_ORDER: tuple[Direction, ...] = tuple(Direction)


@dataclass(frozen=True, slots=True)
class OpenDay:
    """``O``: a business day opens with the change fund in the drawer."""

    number: int
    business_date: date
    timestamp: datetime
    staff_code: str
    opening_cash: int


@dataclass(frozen=True, slots=True)
class TransactionStart:
    """``T``: a transaction starts."""

    number: int
    receipt_no: int
    kind: Kind
    ref_receipt_no: int | None
    timestamp: datetime
    staff_code: str
    tax_mode: TaxMode


@dataclass(frozen=True, slots=True)
class ItemLine:
    """``L``: an item line (amount in the receipt's tax mode, discounts negative)."""

    number: int
    receipt_no: int
    line_no: int
    dept_code: str
    item_code: str
    name: str
    qty: Decimal
    unit_price: int
    amount: int
    tax_class: TaxClass


@dataclass(frozen=True, slots=True)
class ReceiptTax:
    """``X``: the receipt's tax for one class."""

    number: int
    receipt_no: int
    tax_class: TaxClass
    base: int
    tax: int
    gross: int


@dataclass(frozen=True, slots=True)
class Payment:
    """``P``: a payment; amount = tendered − change."""

    number: int
    receipt_no: int
    method: Method
    brand: str
    tendered: int
    amount: int
    change: int


@dataclass(frozen=True, slots=True)
class TransactionEnd:
    """``E``: the transaction ends."""

    number: int
    receipt_no: int
    total: int
    tax_total: int


@dataclass(frozen=True, slots=True)
class Movement:
    """``M``: cash put into or taken out of the drawer."""

    number: int
    movement_no: int
    direction: Direction
    reason_code: str
    reason_name: str
    amount: int
    timestamp: datetime
    staff_code: str


@dataclass(frozen=True, slots=True)
class CashCount:
    """``C``: the cash count at close."""

    number: int
    expected_cash: int
    counted_cash: int
    difference: int


@dataclass(frozen=True, slots=True)
class Close:
    """``Z``: the business day closes (close_no 1) or is closed again (close_no ≥ 2)."""

    number: int
    business_date: date
    close_no: int
    timestamp: datetime
    receipt_count: int
    gross_total: int
    class_totals: dict[TaxClass, int]
    method_totals: dict[Method, int]
    movement_totals: dict[Direction, int]
    cash_difference: int
    first_record_no: int


Record = (
    OpenDay
    | TransactionStart
    | ItemLine
    | ReceiptTax
    | Payment
    | TransactionEnd
    | Movement
    | CashCount
    | Close
)


@dataclass(frozen=True, slots=True)
class Transaction:
    """One receipt: its T, then L, X, P records and its E (None while unfinished)."""

    start: TransactionStart
    lines: tuple[ItemLine, ...]
    taxes: tuple[ReceiptTax, ...]
    payments: tuple[Payment, ...]
    end: TransactionEnd | None

    @property
    def receipt_no(self) -> int:
        return self.start.receipt_no

    @property
    def counted(self) -> bool:
        """TRAINING receipts count nowhere."""
        return self.start.kind is not Kind.TRAINING


@dataclass(frozen=True, slots=True)
class BusinessDay:
    """An assembled business day: from its O to its Z (close_no 1), in record order.

    ``transactions`` and ``movements`` keep record order; ``recloses`` are later Z records
    (close_no ≥ 2) for the same business date seen so far.
    """

    opening: OpenDay
    transactions: tuple[Transaction, ...]
    movements: tuple[Movement, ...]
    cash_count: CashCount | None
    close: Close
    recloses: tuple[Close, ...] = ()

    @property
    def business_date(self) -> date:
        return self.close.business_date

    @property
    def first_record_no(self) -> int:
        return self.opening.number

    @property
    def last_record_no(self) -> int:
        return self.close.number

    @property
    def close_no(self) -> int:
        """The highest close number seen for this day."""
        return max([self.close.close_no, *(z.close_no for z in self.recloses)])
