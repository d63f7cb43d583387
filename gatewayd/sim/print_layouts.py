"""Receipts and Z reports of a register that only prints, in three Japanese layouts.

Pure: a seeded day of receipts (``generate_print_day``) and the ESC/POS bytes its register
would print (``receipt_bytes``, ``report_bytes``). The layouts differ the way real models do:

- ``label-yen`` (A): ``FS &`` Kanji, double-size heading (``GS !``), ``¥1,234`` right-aligned,
  negatives ``-¥1,234``, 対象額 tax-included, labels 総売上 / 10%対象 / 10%税額 / 現金 …;
- ``en-suffix`` (B): no ``FS &`` (the printer's DIP switches select Shift JIS), no double size,
  bold (``ESC E``), amounts ``1,234円``, negatives ``△1,234円``, labels 純売上 / 標準税率対象 …;
- ``net-columns`` (C): 外税 — 対象額 printed before tax, two columns, amounts without a sign
  mark and negatives with a trailing ``-`` (``1,234-``), double-size heading by ``ESC !``,
  a half-width katakana banner by ``ESC t 1`` outside Kanji mode.

The shipped templates in etc/templates/ read these layouts (tests/test_tap_*.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from gatewayd.protocol.records import Method, TaxClass

LAYOUTS = ("label-yen", "en-suffix", "net-columns")
WIDTH = 42
INIT = b"\x1b@\x1bR\x08"
KANJI_ON = b"\x1c&\x1cC\x01"
KANJI_OFF = b"\x1c."
CUT = b"\x1dV\x42\x00"
PERCENT = {TaxClass.STANDARD: 10, TaxClass.REDUCED: 8}
PRINTED_METHODS = (Method.CASH, Method.CREDIT, Method.EMONEY, Method.QR)
_METHOD_WEIGHTS = (Method.CASH, Method.CASH, Method.CASH, Method.CREDIT, Method.EMONEY, Method.QR)


def tax_in(gross: int, percent: int) -> int:
    """Tax inside a tax-included amount, rounded down (symmetric for negatives)."""
    value = abs(gross) * percent // (100 + percent)
    return value if gross >= 0 else -value


@dataclass(frozen=True, slots=True)
class PrintReceipt:
    number: int
    items: tuple[tuple[str, TaxClass, int], ...]  # name, class, tax-included amount
    method: Method
    refund: bool

    @property
    def total(self) -> int:
        return sum(a for _n, _c, a in self.items)

    def class_gross(self, cls: TaxClass) -> int:
        return sum(a for _n, c, a in self.items if c is cls)

    def class_tax(self, cls: TaxClass) -> int:
        return tax_in(self.class_gross(cls), PERCENT[cls])


@dataclass(slots=True)
class PrintDay:
    """One business day as the register knows it (what its Z report prints)."""

    business_date: date
    z_counter: int
    receipts: list[PrintReceipt]
    voids: int
    cash_in: int
    cash_out: int
    cash_difference: int
    store: str = "0001"
    terminal: str = "01"
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def counted(self) -> list[PrintReceipt]:
        return self.receipts

    @property
    def gross(self) -> int:
        return sum(r.total for r in self.receipts)

    def class_gross(self, cls: TaxClass) -> int:
        return sum(r.class_gross(cls) for r in self.receipts)

    def class_tax(self, cls: TaxClass) -> int:
        return sum(r.class_tax(cls) for r in self.receipts)

    def method_total(self, method: Method) -> int:
        return sum(r.total for r in self.receipts if r.method is method)

    @property
    def returns(self) -> int:
        return sum(r.total for r in self.receipts if r.refund)


_ITEMS = (
    ("おにぎり", TaxClass.REDUCED, 150),
    ("サンドイッチ", TaxClass.REDUCED, 380),
    ("緑茶", TaxClass.REDUCED, 140),
    ("弁当", TaxClass.REDUCED, 598),
    ("ボールペン", TaxClass.STANDARD, 165),
    ("電池", TaxClass.STANDARD, 440),
    ("タオル", TaxClass.STANDARD, 880),
    ("店内飲食セット", TaxClass.STANDARD, 990),
)


def generate_print_day(
    seed: int, business_date: date, z_counter: int, receipts: int = 12, store: str = "0001",
    terminal: str = "01",
) -> PrintDay:
    """A seeded day: sales in both rates, four methods, a refund now and then, movements."""
    rng = random.Random(seed)
    out: list[PrintReceipt] = []
    cash = 0
    for n in range(1, receipts + 1):
        items = tuple(
            (name, cls, price * rng.randint(1, 3))
            for name, cls, price in rng.sample(_ITEMS, rng.randint(1, 4))
        )
        refund = rng.random() < 0.08 and cash > items[0][2]  # refunds come out of the till
        if refund:
            items = tuple((name, cls, -amount) for name, cls, amount in items[:1])
        method = Method.CASH if refund else rng.choice(_METHOD_WEIGHTS)
        receipt = PrintReceipt(n, items, method, refund)
        cash += receipt.total if method is Method.CASH else 0
        out.append(receipt)
    return PrintDay(
        business_date=business_date,
        z_counter=z_counter,
        receipts=out,
        voids=rng.choice([0, 0, 165, 598]),
        cash_in=rng.choice([0, 0, 10000]),
        cash_out=rng.choice([0, 1200, 3300]),
        cash_difference=rng.choice([0, 0, 0, -100, 50]),
        store=store,
        terminal=terminal,
    )


def generate_print_days(
    seed: int, days: int, start: date, first_counter: int = 1, receipts: int = 12
) -> list[PrintDay]:
    return [
        generate_print_day(seed * 1000 + i, start + timedelta(days=i), first_counter + i, receipts)
        for i in range(days)
    ]


# ---------------------------------------------------------------------------------------------
# text helpers


def _width(text: str) -> int:
    return sum(1 if ord(ch) < 0x80 or 0xFF61 <= ord(ch) <= 0xFF9F else 2 for ch in text)


def _columns(left: str, right: str, width: int = WIDTH) -> str:
    return left + " " * max(1, width - _width(left) - _width(right)) + right


def _sjis(text: str) -> bytes:
    """CP932; ¥ is 5Ch, printed as ¥ under ``ESC R 8`` (the Japanese character set)."""
    return text.replace("¥", "\\").encode("cp932")


def yen_a(amount: int) -> str:
    return f"-¥{-amount:,}" if amount < 0 else f"¥{amount:,}"


def yen_b(amount: int) -> str:
    return f"△{-amount:,}円" if amount < 0 else f"{amount:,}円"


def yen_c(amount: int) -> str:
    return f"{-amount:,}-" if amount < 0 else f"{amount:,}"


def _lines(text_lines: list[str]) -> bytes:
    return b"".join(_sjis(t) + b"\n" for t in text_lines)


# ---------------------------------------------------------------------------------------------
# receipts


def receipt_bytes(layout: str, day: PrintDay, receipt: PrintReceipt, *, training: bool = False,
                  reprint: bool = False) -> bytes:
    """A customer receipt (never read as a report: it has no report heading)."""
    fmt = {"label-yen": yen_a, "en-suffix": yen_b, "net-columns": yen_c}[layout]
    head = [f"{day.business_date:%Y/%m/%d}  No.{receipt.number:04d}"]
    if training:
        head.insert(0, f"*** {_MARKS[layout]['training']} ***")
    if reprint:
        head.insert(0, f"** {_MARKS[layout]['reprint']} **")
    body = [_columns(name, fmt(amount)) for name, _c, amount in receipt.items]
    body.append(_columns("合計", fmt(receipt.total)))
    body.append(_columns({Method.CASH: "現金", Method.CREDIT: "クレジット",
                          Method.EMONEY: "電子マネー", Method.QR: "QR決済"}[receipt.method]
                         if receipt.method in PRINTED_METHODS else "その他", fmt(receipt.total)))
    title = "返品" if receipt.refund else "領収書"
    kanji = b"" if layout == "en-suffix" else KANJI_ON
    data = INIT + kanji + b"\x1ba\x01" + _sjis(title) + b"\n\x1ba\x00" + _lines(head + body)
    # a barcode and a QR code with Kanji-looking bytes inside: must never be read as text
    data += b"\x1dk\x49\x0a{B" + str(receipt.number).zfill(8).encode() + b"\n"
    qr = "合計".encode("cp932") + b"\x0a\x1b\x1dV"
    store = bytes([0x31, 0x50, 0x30]) + qr
    data += b"\x1d(k" + bytes([len(store) % 256, len(store) // 256]) + store
    data += b"\x1d(k\x03\x001Q0"
    return data + b"\n\n" + CUT


# ---------------------------------------------------------------------------------------------
# reports


def _flags(training: bool, reprint: bool, reclose: bool, mark: dict[str, str]) -> list[str]:
    out = []
    if training:
        out.append(mark["training"])
    if reprint:
        out.append(mark["reprint"])
    if reclose:
        out.append(mark["reclose"])
    return out


def _report_a(day: PrintDay, title: str, flags: list[str]) -> bytes:
    r, s = TaxClass.REDUCED, TaxClass.STANDARD
    body = [
        *flags,
        f"営業日 {day.business_date:%Y/%m/%d}",
        f"店舗 {day.store}  レジ {day.terminal}",
        f"精算No.{day.z_counter:04d}",
        "-" * WIDTH,
        _columns("客数", f"{len(day.receipts)}人"),
        _columns("総売上", yen_a(day.gross)),
        _columns("10%対象", yen_a(day.class_gross(s))),
        _columns("10%税額", yen_a(day.class_tax(s))),
        _columns("8%対象", yen_a(day.class_gross(r))),
        _columns("8%税額", yen_a(day.class_tax(r))),
        "-" * WIDTH,
        _columns("現金", yen_a(day.method_total(Method.CASH))),
        _columns("クレジット", yen_a(day.method_total(Method.CREDIT))),
        _columns("電子マネー", yen_a(day.method_total(Method.EMONEY))),
        _columns("QR決済", yen_a(day.method_total(Method.QR))),
        "-" * WIDTH,
        _columns("返品", yen_a(day.returns)),
        _columns("取消", yen_a(day.voids)),
        _columns("入金", yen_a(day.cash_in)),
        _columns("出金", yen_a(day.cash_out)),
        _columns("過不足", yen_a(day.cash_difference)),
    ]
    return (
        INIT + KANJI_ON + b"\x1ba\x01\x1d!\x11" + _sjis(title) + b"\n\x1d!\x00\x1ba\x00"
        + _lines(body) + b"\n\n" + CUT
    )


def _report_b(day: PrintDay, title: str, flags: list[str]) -> bytes:
    r, s = TaxClass.REDUCED, TaxClass.STANDARD
    body = [
        *flags,
        f"日付 {day.business_date.year}年{day.business_date.month:02d}月"
        f"{day.business_date.day:02d}日",
        f"店番 {day.store} 機番 {day.terminal}",
        f"Z回数 {day.z_counter}",
        _columns("取引件数", f"{len(day.receipts)}件"),
        _columns("純売上", yen_b(day.gross)),
        _columns("標準税率対象", yen_b(day.class_gross(s))),
        _columns(" 内消費税(標準)", yen_b(day.class_tax(s))),
        _columns("軽減税率対象", yen_b(day.class_gross(r))),
        _columns(" 内消費税(軽減)", yen_b(day.class_tax(r))),
        _columns("現計", yen_b(day.method_total(Method.CASH))),
        _columns("クレ", yen_b(day.method_total(Method.CREDIT))),
        _columns("電子マネー", yen_b(day.method_total(Method.EMONEY))),
        _columns("コード決済", yen_b(day.method_total(Method.QR))),
        _columns("戻", yen_b(day.returns)),
        _columns("訂正", yen_b(-day.voids)),
        _columns("入金計", yen_b(day.cash_in)),
        _columns("出金計", yen_b(-day.cash_out)),
        _columns("現金過不足", yen_b(day.cash_difference)),
    ]
    return INIT + b"\x1bE\x01" + _sjis(title) + b"\n\x1bE\x00" + _lines(body) + b"\n" + CUT


def _report_c(day: PrintDay, title: str, flags: list[str]) -> bytes:
    r, s = TaxClass.REDUCED, TaxClass.STANDARD

    def two(label: str, amount: int, label2: str, amount2: int) -> str:
        return _columns(label, yen_c(amount), 20) + " " + _columns(label2, yen_c(amount2), 21)

    body = [
        *flags,
        f"{day.business_date:%Y-%m-%d}  #{day.z_counter:06d}  ST{day.store}/{day.terminal}",
        two("売上", day.gross, "人数", len(day.receipts)),
        two("課税10%", day.class_gross(s) - day.class_tax(s), "税10%", day.class_tax(s)),
        two("課税8%", day.class_gross(r) - day.class_tax(r), "税8%", day.class_tax(r)),
        two("現金", day.method_total(Method.CASH), "ｸﾚｼﾞｯﾄ", day.method_total(Method.CREDIT)),
        two("電子ﾏﾈｰ", day.method_total(Method.EMONEY), "QR", day.method_total(Method.QR)),
        two("返品", day.returns, "取消", -day.voids),
        two("入金", day.cash_in, "出金", day.cash_out),
        two("過不足", day.cash_difference, "", 0)[:20].rstrip(),
    ]
    banner = INIT + b"\x1bt\x01" + "ｾｲｻﾝ".encode("cp932") + b"\n"
    return (
        banner + KANJI_ON + b"\x1b!\x30" + _sjis(title) + b"\n\x1b!\x00"
        + _lines(body) + b"\x1d\x56\x00"
    )


_MARKS = {
    "label-yen": {"z": "精算レポート", "x": "点検レポート", "training": "トレーニング",
                  "reprint": "再発行", "reclose": "再精算"},
    "en-suffix": {"z": "【Z】日計精算", "x": "【X】日計点検", "training": "練習モード",
                  "reprint": "控え(再印字)", "reclose": "再精算"},
    "net-columns": {"z": "Ｚ精算", "x": "Ｘ点検", "training": "ﾄﾚｰﾆﾝｸﾞ",
                    "reprint": "ﾘﾌﾟﾘﾝﾄ", "reclose": "再精算"},
}
_RENDER = {"label-yen": _report_a, "en-suffix": _report_b, "net-columns": _report_c}


def report_bytes(layout: str, day: PrintDay, *, x_report: bool = False, training: bool = False,
                 reprint: bool = False, reclose: bool = False) -> bytes:
    """The day's Z report (or X report) as the register prints it."""
    mark = _MARKS[layout]
    title = mark["x" if x_report else "z"]
    return _RENDER[layout](day, title, _flags(training, reprint, reclose, mark))


def day_stream(layout: str, day: PrintDay, *, training_receipts: int = 1) -> list[bytes]:
    """Everything the register prints for a day, job by job: receipts (and a training one),
    an X report at midday, the Z report at close."""
    jobs = [receipt_bytes(layout, day, r) for r in day.receipts]
    if training_receipts and day.receipts:
        jobs.insert(1, receipt_bytes(layout, day, day.receipts[0], training=True))
    jobs.insert(len(jobs) // 2, report_bytes(layout, day, x_report=True))
    jobs.append(report_bytes(layout, day))
    return jobs
