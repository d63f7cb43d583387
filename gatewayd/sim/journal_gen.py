"""Realistic REGLINK/1 journals of one terminal, for the register simulator, tests and benches.

Pure and seeded: the same arguments give the same lines. A generated day holds sales in 内税
(IN) and 外税 (OUT) with the tax rounded down once per receipt and class, Japanese items of
every class (food 8R, goods 10, rarely 0 and EX), weighed goods, discounts, every payment
method with change and split payments, VOIDs (also of earlier days), corrections (VOID + SALE
naming the original), RETURNs, TRAINING receipts, cash movements, a cash count with occasional
differences and the Z; re-closes of past days on request. Every generated day passes the
checks of register-link.md section 6 (see tests/test_journal_gen.py).

``generate_journal`` makes a whole journal; ``new_generator`` + ``generate_day`` continue one
day at a time (the simulator), ``generate_reclose`` writes a re-close Z of a past day.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_FLOOR, Decimal

from gatewayd.protocol.journal_parser import format_record
from gatewayd.protocol.records import (
    DIRECTION_ORDER,
    METHOD_ORDER,
    TAX_CLASS_ORDER,
    CashCount,
    Close,
    Direction,
    ItemLine,
    Kind,
    Method,
    Movement,
    OpenDay,
    Payment,
    ReceiptTax,
    Record,
    TaxClass,
    TaxMode,
    TransactionEnd,
    TransactionStart,
)

RATES: dict[TaxClass, int] = {
    TaxClass.STANDARD: 10, TaxClass.REDUCED: 8, TaxClass.EXEMPT: 0, TaxClass.OUT_OF_SCOPE: 0,
}


@dataclass(frozen=True, slots=True)
class Item:
    """A catalog item; weighed items are priced per kg and sold by decimal qty."""

    dept: str
    code: str
    name: str
    price: int
    tax_class: TaxClass
    weighed: bool = False


def _catalog() -> tuple[Item, ...]:
    food = TaxClass.REDUCED
    goods = TaxClass.STANDARD
    rows: list[tuple[str, str, int, TaxClass, bool]] = [
        ("01", "おにぎり 鮭", 150, food, False),
        ("01", "おにぎり ツナマヨ", 140, food, False),
        ("01", "幕の内弁当", 598, food, False),
        ("01", "サンドイッチ ミックス", 298, food, False),
        ("02", "緑茶 500ml", 128, food, False),
        ("02", "ミネラルウォーター 2L", 108, food, False),
        ("02", "缶コーヒー 微糖", 120, food, False),
        ("03", "牛乳 1000ml", 238, food, False),
        ("03", "食パン 6枚切", 198, food, False),
        ("03", "卵 10個入", 268, food, False),
        ("03", "納豆 3パック", 98, food, False),
        ("03", "ヨーグルト プレーン", 158, food, False),
        ("03", "カップ麺 しょうゆ", 178, food, False),
        ("04", "鶏もも肉", 1280, food, True),
        ("04", "豚バラ肉", 1980, food, True),
        ("04", "量り売り ミックスナッツ", 2400, food, True),
        ("05", "バナナ 1房", 198, food, False),
        ("05", "りんご ふじ", 128, food, False),
        ("05", "キャベツ", 158, food, False),
        ("05", "トマト", 88, food, False),
        ("06", "ビール 350ml", 228, goods, False),
        ("06", "日本酒 300ml", 498, goods, False),
        ("07", "ボールペン 黒", 110, goods, False),
        ("07", "単三電池 4本", 398, goods, False),
        ("07", "ティッシュペーパー 5箱", 348, goods, False),
        ("07", "台所用洗剤", 218, goods, False),
        ("07", "歯ブラシ ふつう", 198, goods, False),
        ("07", "レジ袋 L", 5, goods, False),
        ("08", "週刊誌", 450, goods, False),
        ("08", "文庫本", 880, goods, False),
    ]
    items = [Item(dept, f"49{index:011d}", name, price, tax_class, weighed)
             for index, (dept, name, price, tax_class, weighed) in enumerate(rows, start=1)]
    items += [
        Item("09", "4900000000841", "郵便切手 84円", 84, TaxClass.EXEMPT),
        Item("09", "4900000002005", "収入印紙 200円", 200, TaxClass.EXEMPT),
        Item("09", "4900000030007", "プリペイドカード 3000円", 3000, TaxClass.OUT_OF_SCOPE),
        Item("09", "4900000000109", "募金", 100, TaxClass.OUT_OF_SCOPE),
    ]
    return tuple(items)


CATALOG: tuple[Item, ...] = _catalog()
_COMMON = tuple(i for i in CATALOG if i.tax_class in (TaxClass.STANDARD, TaxClass.REDUCED))
_FOOD = tuple(i for i in CATALOG if i.tax_class is TaxClass.REDUCED)
_GOODS = tuple(i for i in CATALOG if i.tax_class is TaxClass.STANDARD)
_RARE = tuple(i for i in CATALOG if i.tax_class in (TaxClass.EXEMPT, TaxClass.OUT_OF_SCOPE))
_RARE_WEIGHTS = (6, 3, 1, 2)  # stamps, revenue stamps, prepaid cards, donations

BRANDS: dict[Method, tuple[str, ...]] = {
    Method.CASH: ("",),
    Method.CREDIT: ("VISA", "Mastercard", "JCB"),
    Method.EMONEY: ("交通系IC", "WAON", "nanaco"),
    Method.QR: ("PayPay", "楽天ペイ"),
    Method.GIFT: ("全国共通商品券",),
    Method.POINT: ("ポイント",),
    Method.OTHER: ("売掛",),
}

STAFF = ("1001", "1002", "1003", "1004", "2001")


@dataclass(frozen=True, slots=True)
class GeneratorOptions:
    """How a generated day looks; rates are per transaction."""

    tax_mode: str = "MIXED"  # "IN", "OUT" or "MIXED" (mostly IN, some OUT)
    void_rate: float = 0.02
    correction_rate: float = 0.01
    return_rate: float = 0.015
    training_rate: float = 0.01
    zero_total_rate: float = 0.004
    movements: tuple[int, int] = (1, 3)
    cash_difference_rate: float = 0.15
    opening_cash: int = 30000


@dataclass(slots=True)
class _Sale:
    """A receipt kept for later VOIDs and RETURNs."""

    receipt_no: int
    kind: Kind
    tax_mode: TaxMode
    lines: list[tuple[Item, Decimal, int, int]]  # item, qty, unit_price, amount
    taxes: list[tuple[TaxClass, int, int, int]]  # class, base, tax, gross
    payments: list[tuple[Method, str, int]]  # method, brand, amount
    total: int
    tax_total: int
    voided: bool = False
    returned: bool = False


@dataclass(slots=True)
class GeneratorState:
    """Everything needed to continue a journal: counters, past receipts and past closes."""

    rng: random.Random
    options: GeneratorOptions
    next_record_no: int
    next_receipt_no: int
    next_movement_no: int
    next_date: date
    history: list[_Sale] = field(default_factory=list)
    closes: dict[date, Close] = field(default_factory=dict)
    close_counts: dict[date, int] = field(default_factory=dict)


def new_generator(seed: int, start: date, store_code: str = "0001", terminal_no: str = "01",
                  *, first_record_no: int = 1, first_receipt_no: int = 1,
                  first_movement_no: int = 1,
                  options: GeneratorOptions | None = None) -> GeneratorState:
    """A generator whose first day is ``start``; store and terminal vary the content."""
    rng = random.Random(f"{seed}/{store_code}/{terminal_no}")
    return GeneratorState(rng, options or GeneratorOptions(), first_record_no,
                          first_receipt_no, first_movement_no, start)


# --- money ---------------------------------------------------------------------------------


def tax_of(base: int, tax_class: TaxClass, mode: TaxMode) -> int:
    """The class's tax of one receipt, rounded down once (symmetric for negative bases)."""
    rate = RATES[tax_class]
    if rate == 0 or base == 0:
        return 0
    magnitude = abs(base) * rate // ((100 + rate) if mode is TaxMode.IN else 100)
    return magnitude if base > 0 else -magnitude


def _class_taxes(lines: Sequence[tuple[Item, Decimal, int, int]],
                 mode: TaxMode) -> list[tuple[TaxClass, int, int, int]]:
    bases: dict[TaxClass, int] = {}
    for item, _qty, _price, amount in lines:
        bases[item.tax_class] = bases.get(item.tax_class, 0) + amount
    out = []
    for cls in TAX_CLASS_ORDER:
        if cls in bases:
            base = bases[cls]
            tax = tax_of(base, cls, mode)
            out.append((cls, base, tax, base + tax if mode is TaxMode.OUT else base))
    return out


# --- the day -------------------------------------------------------------------------------


class _Day:
    """Builds one day's records, keeping the running sums the C and Z need."""

    def __init__(self, state: GeneratorState, business_date: date) -> None:
        self.state = state
        self.rng = state.rng
        self.business_date = business_date
        self.records: list[Record] = []
        self.receipt_count = 0
        self.gross = 0
        self.by_class = dict.fromkeys(TAX_CLASS_ORDER, 0)
        self.by_method = dict.fromkeys(METHOD_ORDER, 0)
        self.by_direction = dict.fromkeys(DIRECTION_ORDER, 0)
        self.cash = 0
        self.first_record_no = state.next_record_no

    def emit(self, record: Record) -> None:
        self.records.append(record)
        self.state.next_record_no += 1

    @property
    def n(self) -> int:
        return self.state.next_record_no

    def staff(self) -> str:
        return self.rng.choice(STAFF)

    # transactions

    def transaction(self, kind: Kind, mode: TaxMode, when: datetime,
                    lines: list[tuple[Item, Decimal, int, int]],
                    payments: list[tuple[Method, str, int, int, int]],
                    ref: int | None, taxes: list[tuple[TaxClass, int, int, int]] | None = None,
                    ) -> _Sale:
        """Write T, L, X, P, E; payments are (method, brand, tendered, amount, change)."""
        state = self.state
        receipt_no = state.next_receipt_no
        state.next_receipt_no += 1
        self.emit(TransactionStart(self.n, receipt_no, kind, ref, when, self.staff(), mode))
        for line_no, (item, qty, price, amount) in enumerate(lines, start=1):
            self.emit(ItemLine(self.n, receipt_no, line_no, item.dept, item.code, item.name,
                               qty, price, amount, item.tax_class))
        if taxes is None:
            taxes = _class_taxes(lines, mode)
        for cls, base, tax, gross in taxes:
            self.emit(ReceiptTax(self.n, receipt_no, cls, base, tax, gross))
        for method, brand, tendered, amount, change in payments:
            self.emit(Payment(self.n, receipt_no, method, brand, tendered, amount, change))
        total = sum(t[3] for t in taxes)
        tax_total = sum(t[2] for t in taxes)
        self.emit(TransactionEnd(self.n, receipt_no, total, tax_total))
        if kind is not Kind.TRAINING:
            self.receipt_count += 1
            self.gross += total
            for cls, _b, _t, gross in taxes:
                self.by_class[cls] += gross
            for method, _brand, _tendered, amount, _change in payments:
                self.by_method[method] += amount
                if method is Method.CASH:
                    self.cash += amount
        sale = _Sale(receipt_no, kind, mode, list(lines), list(taxes),
                     [(m, b, a) for m, b, _t, a, _c in payments], total, tax_total)
        return sale

    def pick_lines(self) -> list[tuple[Item, Decimal, int, int]]:
        rng = self.rng
        count = min(1 + int(rng.expovariate(0.45)), 12)
        lines: list[tuple[Item, Decimal, int, int]] = []
        for _ in range(count):
            roll = rng.random()
            if roll < 0.03:
                item = rng.choices(_RARE, weights=_RARE_WEIGHTS)[0]
            else:
                item = rng.choice(_FOOD if roll < 0.6 else _GOODS)
            if item.weighed:
                qty = Decimal(rng.randint(120, 950)) / 1000
                amount = int((qty * item.price).to_integral_value(ROUND_FLOOR))
                lines.append((item, qty, item.price, amount))
            else:
                units = 1 if rng.random() < 0.75 else rng.randint(2, 4)
                lines.append((item, Decimal(units), item.price, units * item.price))
            if rng.random() < 0.06 and lines[-1][3] >= 100:
                target = lines[-1]
                off = (target[3] * rng.choice((10, 20, 30, 50)) // 100 if rng.random() < 0.5
                       else min(target[3], rng.choice((10, 20, 30, 50, 100))))
                if off > 0:
                    name = "値引" if rng.random() < 0.5 else "割引 見切り品"
                    lines.append((Item(target[0].dept, "", name, -off, target[0].tax_class),
                                  Decimal(1), -off, -off))
        return lines

    def pay(self, total: int) -> list[tuple[Method, str, int, int, int]]:
        rng = self.rng
        if total == 0:
            return []
        roll = rng.random()
        if roll < 0.45:
            return [self.cash_payment(total)]
        if roll < 0.62:
            return [(Method.CREDIT, rng.choice(BRANDS[Method.CREDIT]), total, total, 0)]
        if roll < 0.75:
            return [(Method.EMONEY, rng.choice(BRANDS[Method.EMONEY]), total, total, 0)]
        if roll < 0.87:
            return [(Method.QR, rng.choice(BRANDS[Method.QR]), total, total, 0)]
        if roll < 0.91 and total >= 1000:
            gift = min(total // 1000, rng.randint(1, 3)) * 1000
            rest = total - gift
            out = [(Method.GIFT, BRANDS[Method.GIFT][0], gift, gift, 0)]
            return out + ([self.cash_payment(rest)] if rest else [])
        if roll < 0.96:
            points = min(total, rng.randint(1, 500))
            rest = total - points
            out = [(Method.POINT, BRANDS[Method.POINT][0], points, points, 0)]
            if rest:
                if rng.random() < 0.5:
                    out.append(self.cash_payment(rest))
                else:
                    out.append((Method.CREDIT, rng.choice(BRANDS[Method.CREDIT]), rest, rest, 0))
            return out
        if roll < 0.99 and total >= 2:
            part = rng.randint(1, total - 1)
            return [(Method.EMONEY, rng.choice(BRANDS[Method.EMONEY]), part, part, 0),
                    self.cash_payment(total - part)]
        return [(Method.OTHER, BRANDS[Method.OTHER][0], total, total, 0)]

    def cash_payment(self, amount: int) -> tuple[Method, str, int, int, int]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.3:
            tendered = amount
        elif roll < 0.55:
            tendered = -(-amount // 100) * 100
        elif roll < 0.85:
            tendered = -(-amount // 1000) * 1000
        else:
            tendered = max(5000, -(-amount // 5000) * 5000)
            if rng.random() < 0.5:
                tendered = max(tendered, 10000)
        return (Method.CASH, "", tendered, amount, tendered - amount)

    def sale(self, when: datetime, kind: Kind = Kind.SALE, ref: int | None = None,
             lines: list[tuple[Item, Decimal, int, int]] | None = None,
             mode: TaxMode | None = None) -> _Sale:
        mode = mode or self.mode()
        if lines is None:
            lines = self.pick_lines()
            if self.rng.random() < self.state.options.zero_total_rate:
                item = self.rng.choice(_COMMON)
                lines = [(item, Decimal(1), item.price, item.price),
                         (Item(item.dept, "", "無料引換券", -item.price, item.tax_class),
                          Decimal(1), -item.price, -item.price)]
        taxes = _class_taxes(lines, mode)
        total = sum(t[3] for t in taxes)
        return self.transaction(kind, mode, when, lines, self.pay(total), ref, taxes)

    def mode(self) -> TaxMode:
        setting = self.state.options.tax_mode
        if setting == "MIXED":
            return TaxMode.OUT if self.rng.random() < 0.2 else TaxMode.IN
        return TaxMode(setting)

    def void(self, when: datetime, original: _Sale) -> _Sale:
        """取消: the original's L, X, P and E negated; every payment refunded as it was paid."""
        original.voided = True
        lines = [(item, -qty, price, -amount) for item, qty, price, amount in original.lines]
        taxes = [(cls, -base, -tax, -gross) for cls, base, tax, gross in original.taxes]
        payments = [(m, b, -a, -a, 0) for m, b, a in original.payments if a]
        return self.transaction(Kind.VOID, original.tax_mode, when, lines, payments,
                                original.receipt_no, taxes)

    def return_part(self, when: datetime, original: _Sale) -> _Sale | None:
        """返品: one item line of an earlier sale comes back; refunded by its first method."""
        original.returned = True
        candidates = [ln for ln in original.lines if ln[3] > 0]
        if not candidates or not original.payments:
            return None
        item, qty, price, amount = self.rng.choice(candidates)
        if item.weighed or qty == 1:
            back = [(item, -qty, price, -amount)]
        else:
            back = [(item, Decimal(-1), price, -price)]
        taxes = _class_taxes(back, original.tax_mode)
        refund = sum(t[3] for t in taxes)
        method, brand, _paid = original.payments[-1]
        if method in (Method.POINT, Method.GIFT):
            method, brand = Method.CASH, ""
        return self.transaction(Kind.RETURN, original.tax_mode, when, back,
                                [(method, brand, refund, refund, 0)], original.receipt_no,
                                taxes)

    def movement(self, when: datetime) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.3:
            direction, code, name, amount = Direction.IN, "11", "釣銭補充", rng.choice(
                (5000, 10000, 20000))
        elif roll < 0.7:
            drawer = self.state.options.opening_cash + self.cash + self.by_direction[
                Direction.IN] - self.by_direction[Direction.OUT]
            amount = (drawer - self.state.options.opening_cash) // 10000 * 10000
            if amount <= 0:
                direction, code, name, amount = Direction.IN, "11", "釣銭補充", 10000
            else:
                direction, code, name = Direction.OUT, "21", "売上金中間回収"
        else:
            direction, code = Direction.OUT, "22"
            name = rng.choice(("小口支払 文具", "小口支払 清掃用品", "小口支払 切手"))
            amount = rng.choice((330, 540, 864, 1100, 2980))
        number = self.state.next_movement_no
        self.state.next_movement_no += 1
        self.by_direction[direction] += amount
        self.emit(Movement(self.n, number, direction, code, name, amount, when, self.staff()))

    def finish(self, when: datetime) -> Close:
        opts = self.state.options
        expected = (opts.opening_cash + self.cash + self.by_direction[Direction.IN]
                    - self.by_direction[Direction.OUT])
        difference = 0
        if self.rng.random() < opts.cash_difference_rate:
            difference = self.rng.choice((-1000, -100, -50, -10, -1, 1, 10, 100, 500))
        self.emit(CashCount(self.n, expected, expected + difference, difference))
        close = Close(self.n, self.business_date, 1, when, self.receipt_count, self.gross,
                      dict(self.by_class), dict(self.by_method), dict(self.by_direction),
                      difference, self.first_record_no)
        self.emit(close)
        return close


def _voidable(state: GeneratorState) -> list[_Sale]:
    return [s for s in state.history[-300:]
            if s.kind is Kind.SALE and not s.voided and not s.returned and s.total > 0]


def _timeline(rng: random.Random, business_date: date, count: int) -> list[datetime]:
    """Sorted transaction times between 09:30 and 21:00 of the business date."""
    start = datetime.combine(business_date, time(9, 30))
    span = 11 * 3600 + 30 * 60
    return sorted(start + timedelta(seconds=rng.randrange(span)) for _ in range(count))


def generate_day(state: GeneratorState, receipts: int = 40, *,
                 business_date: date | None = None,
                 reclose_dates: Iterable[date] = ()) -> list[str]:
    """One business day (O … C Z) as record lines; ``receipts`` T records in all.

    ``reclose_dates`` are past business dates closed again during this day (a re-close Z
    between two transactions). The next day defaults to the day after.
    """
    rng = state.rng
    opts = state.options
    day_date = business_date or state.next_date
    state.next_date = day_date + timedelta(days=1)
    day = _Day(state, day_date)
    opened = datetime.combine(day_date, time(9, rng.randrange(0, 25), rng.randrange(60)))
    day.emit(OpenDay(day.n, day_date, opened, day.staff(), opts.opening_cash))
    times = _timeline(rng, day_date, max(receipts, 1))
    movement_at = set(rng.sample(range(len(times)), min(len(times), rng.randint(*opts.movements))))
    reclose_at: dict[int, list[date]] = {}
    for d in reclose_dates:
        reclose_at.setdefault(rng.randrange(len(times)), []).append(d)
    written = 0
    index = 0
    while written < receipts:
        when = times[min(index, len(times) - 1)]
        if index in movement_at:
            day.movement(when)
        for d in reclose_at.pop(index, ()):
            day.emit(_reclose(state, d, when, day.n))
        index += 1
        roll = rng.random()
        past = _voidable(state) if roll < opts.void_rate + opts.correction_rate + \
            opts.return_rate else []
        if roll < opts.void_rate and past:
            day.void(when, rng.choice(past))
            written += 1
        elif roll < opts.void_rate + opts.correction_rate and past and receipts - written >= 2:
            original = rng.choice(past)
            day.void(when, original)
            lines = list(original.lines)
            if len(lines) > 1 and lines[-1][3] > 0:
                lines.pop()
            else:
                item = rng.choice(_COMMON)
                if not item.weighed:
                    lines.append((item, Decimal(1), item.price, item.price))
            state.history.append(day.sale(when, Kind.SALE, original.receipt_no, lines,
                                          original.tax_mode))
            written += 2
        elif roll < opts.void_rate + opts.correction_rate + opts.return_rate and past:
            returned = day.return_part(when, rng.choice(past))
            if returned is None:
                state.history.append(day.sale(when))
            written += 1
        elif roll < (opts.void_rate + opts.correction_rate + opts.return_rate
                     + opts.training_rate):
            day.sale(when, Kind.TRAINING)
            written += 1
        else:
            state.history.append(day.sale(when))
            written += 1
    for later in reclose_at.values():
        for d in later:
            day.emit(_reclose(state, d, times[-1], day.n))
    close_time = datetime.combine(day_date, time(21, 30, rng.randrange(60)))
    close = day.finish(close_time)
    state.closes.setdefault(day_date, close)
    state.close_counts[day_date] = max(state.close_counts.get(day_date, 0), 1)
    if len(state.history) > 2000:
        del state.history[:-1000]
    return [format_record(r) for r in day.records]


def _reclose(state: GeneratorState, business_date: date, when: datetime, number: int) -> Close:
    original = state.closes.get(business_date)
    if original is None:
        raise ValueError(f"no close of {business_date} to close again")
    close_no = state.close_counts[business_date] + 1
    state.close_counts[business_date] = close_no
    return Close(number, business_date, close_no, when, original.receipt_count,
                 original.gross_total, dict(original.class_totals),
                 dict(original.method_totals), dict(original.movement_totals),
                 original.cash_difference, original.first_record_no)


def generate_reclose(state: GeneratorState, business_date: date,
                     when: datetime | None = None) -> str:
    """A re-close Z (next close_no, same figures) of a past day, between days."""
    if when is None:
        when = datetime.combine(state.next_date, time(8, 45))
    close = _reclose(state, business_date, when, state.next_record_no)
    state.next_record_no += 1
    return format_record(close)


@dataclass(frozen=True, slots=True)
class Reclose:
    """Close generated day ``day`` (0-based) again while day ``at_day`` runs (``inside``) or
    just before day ``at_day`` opens (``at_day`` may equal the number of days: at the end)."""

    day: int
    at_day: int
    inside: bool = True


def generate_journal(seed: int, days: int, start: date, store_code: str = "0001",
                     terminal_no: str = "01", receipts_per_day: int = 40,
                     first_record_no: int = 1, first_receipt_no: int = 1, *,
                     recloses: Sequence[Reclose] = (),
                     options: GeneratorOptions | None = None) -> list[str]:
    """``days`` consecutive business days from ``start`` as record lines (no LF)."""
    state = new_generator(seed, start, store_code, terminal_no, first_record_no=first_record_no,
                          first_receipt_no=first_receipt_no, options=options)
    dates = [start + timedelta(days=i) for i in range(days)]
    for r in recloses:
        if not 0 <= r.day < r.at_day <= days or (r.inside and r.at_day >= days):
            raise ValueError(f"re-close of day {r.day} at day {r.at_day} is not possible")
    lines: list[str] = []
    for index in range(days + 1):
        for r in recloses:
            if r.at_day == index and not r.inside:
                lines.append(generate_reclose(state, dates[r.day],
                                              datetime.combine(start + timedelta(days=index),
                                                               time(8, 50))))
        if index == days:
            break
        inside = [dates[r.day] for r in recloses if r.at_day == index and r.inside]
        lines += generate_day(state, receipts_per_day, business_date=dates[index],
                              reclose_dates=inside)
    return lines


# --- faults for tests and the simulator ------------------------------------------------------

FAULT_CHECKS: dict[str, str] = {
    "amount": "check 2",          # an L amount no longer sums to its X base
    "drop": "check 1",            # a record inside a day is missing
    "swap": "check 1",            # two neighbouring records change places, numbers and all
    "duplicate_date": "check 1",  # the last day gets the date of the day before
    "gap": "check 1",             # the register skips a number inside a day (nothing lost)
    "gap_before_open": "check 1",  # the register skips the number just before a day's O
    "format": "format",           # a money field gets a leading zero
}
"""Each fault and the check whose failure comes first in the held day's reason."""


def skip_number(lines: Sequence[str], index: int) -> list[str]:
    """A copy of ``lines`` whose register skipped a record number just before ``lines[index]``.

    That record and every later one take their number + 1, and every Z's first_record_no
    that names one of them follows (the register's Z names its O's real number): the journal
    stays whole and right except for the one missing number, which only check 1 sees.
    """
    out = list(lines)
    skipped = int(out[index].split("\t", 1)[0])
    for i, line in enumerate(out):
        f = line.split("\t")
        if i >= index:
            f[0] = str(int(f[0]) + 1)
        if f[1] == "Z" and len(f) == 12 and f[11].isdigit() and int(f[11]) >= skipped:
            f[11] = str(int(f[11]) + 1)
        out[i] = "\t".join(f)
    return out


def inject_fault(lines: Sequence[str], fault: str, seed: int = 0) -> list[str]:
    """A copy of ``lines`` with one fault (FAULT_CHECKS) in a random place of a day.

    ``duplicate_date`` needs two days; ``gap_before_open`` skips the number of the last
    day's O; the others change the last day that has records strictly between its O and
    its Z.
    """
    rng = random.Random(seed)
    out = list(lines)
    types = [ln.split("\t", 2)[1] for ln in out]
    opens = [i for i, t in enumerate(types) if t == "O"]
    if fault == "gap_before_open":
        if not opens:
            raise ValueError("gap_before_open needs a day")
        return skip_number(out, opens[-1])
    if fault == "duplicate_date":
        if len(opens) < 2:
            raise ValueError("duplicate_date needs two days")
        earlier = out[opens[-2]].split("\t")[2]
        for i in range(opens[-1], len(out)):
            f = out[i].split("\t")
            if f[1] == "O" or (f[1] == "Z" and f[3] == "1"):
                f[2] = earlier
                out[i] = "\t".join(f)
        return out
    start = opens[-1]
    end = next((i for i in range(start + 1, len(out))
                if types[i] == "Z" and out[i].split("\t")[3] == "1"), len(out))
    inside = list(range(start + 1, end))
    if not inside:
        raise ValueError("no records inside the last day")
    if fault == "amount":
        index = rng.choice([i for i in inside if types[i] == "L"])
        f = out[index].split("\t")
        f[9] = str(int(f[9]) + 1)
        out[index] = "\t".join(f)
    elif fault == "drop":
        del out[rng.choice(inside)]
    elif fault == "gap":
        return skip_number(out, rng.choice(inside))
    elif fault == "swap":
        index = rng.choice(inside[:-1] or inside)
        out[index], out[index + 1] = out[index + 1], out[index]
    elif fault == "format":
        index = rng.choice([i for i in inside if types[i] in ("E", "C")])
        f = out[index].split("\t")
        f[-1] = "0" + f[-1].lstrip("-")
        out[index] = "\t".join(f)
    else:
        raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULT_CHECKS)}")
    return out
