"""The close slip: what the printer tells staff after a close is sent to freee or held.

Pure: ``SlipContent`` in, ESC/POS bytes out. Text is Japanese in CP932 with the Shift JIS
code system and Kanji mode switched on explicitly (``FS C 1`` + ``FS &``, cancelled with
``FS .`` before the final cut), because python-escpos 3.1 has no Kanji support: its ``text()`` would
send the characters through single-byte code pages. ``ESC R 8`` (Japan) makes 5Ch print as ¥.
Column widths are counted in CP932 bytes, which on a Japanese printer is exactly the printed
width (double-byte = full-width, single byte = half-width).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol

from gatewayd.protocol.records import METHOD_ORDER, TAX_CLASS_ORDER, Method, TaxClass
from gatewayd.staff_dates import staff_date, staff_datetime


class SlipStatus(StrEnum):
    SENT = "sent"
    HELD = "held"

    @property
    def label(self) -> str:
        return "送信済" if self is SlipStatus.SENT else "保留"


METHOD_LABELS: dict[Method, str] = {
    Method.CASH: "現金",
    Method.CREDIT: "クレジット",
    Method.EMONEY: "電子マネー",
    Method.QR: "QRコード決済",
    Method.GIFT: "商品券",
    Method.POINT: "ポイント",
    Method.OTHER: "その他",
}
CLASS_LABELS: dict[TaxClass, str] = {
    TaxClass.STANDARD: "10% 標準税率",
    TaxClass.REDUCED: "8% 軽減税率",
    TaxClass.EXEMPT: "非課税",
    TaxClass.OUT_OF_SCOPE: "対象外(不課税)",
}


# What a held slip prints, by HeldCause value: plain Japanese for staff, no technical detail
# (check numbers, English, command names): the status page behind the QR code has those.
HELD_SLIP_TEXTS: Mapping[str, tuple[str, str]] = {
    "day_check": (
        "レジの精算データに合わないところがあります。",
        "レジで再精算（再閉局）してください。直らないときは設置担当者に連絡してください。"
        "データはゲートウェイに残っています。",
    ),
    "fiscal_year": (
        "freee会計にこの日の会計年度がないか、締められています。",
        "freee会計で会計年度を作成するか、締めを解除してください。直ると自動で送信します。",
    ),
    "missing_master": (
        "設定にある勘定科目・税区分・口座などがfreee会計にありません。",
        "設置担当者に連絡してください。直ると自動で送信します。",
    ),
    "link": (
        "freee会計との連携が切れています。",
        "ステータス画面の「freee会計との連携」から連携し直してください。"
        "連携すると自動で送信します。",
    ),
    "edited_in_freee": (
        "送信した後にfreee会計で取引が編集されました。",
        "ステータス画面でこの日を開き、どちらの内容を残すか選んでください。",
    ),
    "refused": (
        "freee会計が取引の登録を受け付けませんでした。",
        "ステータス画面のfreeeのメッセージを設置担当者に伝えてください。",
    ),
    "needs_review": (
        "freee会計に同じ管理番号の取引が複数あります。",
        "freee会計で重複した取引を削除してから、ステータス画面でこの日を再送してください。",
    ),
}
HELD_SLIP_FALLBACK = (
    "送信を止めています。",
    "ステータス画面で内容を確認し、わからないときは設置担当者に連絡してください。",
)


def held_slip_texts(cause: str | None) -> tuple[str, str]:
    """理由 and 対応 for a held slip (``cause`` a ``HeldCause`` value; None/unknown: general)."""
    return HELD_SLIP_TEXTS.get(cause or "", HELD_SLIP_FALLBACK)


class DayTotalsLike(Protocol):
    """What ``gatewayd.sync.plan.DayTotals`` has (kept structural: no import of sync)."""

    @property
    def gross(self) -> int: ...
    @property
    def tax(self) -> int | None: ...
    @property
    def by_class(self) -> Mapping[TaxClass, int]: ...
    @property
    def by_method(self) -> Mapping[Method, int]: ...


@dataclass(frozen=True, slots=True)
class SlipContent:
    """Everything printed on one close slip.

    ``tax`` None = the day's records are not at hand (only the Z's figures). ``reason`` and
    ``action`` are for a held day: why, and what staff should do. ``made_at`` is the local time
    the result was known (printed as 作成), None to leave it out.
    """

    store_name: str
    store_code: str
    terminal: str
    business_date: date
    method_totals: Mapping[Method, int]
    class_totals: Mapping[TaxClass, int]
    gross: int
    tax: int | None
    status: SlipStatus
    reason: str | None = None
    action: str | None = None
    status_url: str | None = None
    close_no: int = 1
    made_at: datetime | None = None

    @classmethod
    def from_totals(cls, totals: DayTotalsLike, *, store_name: str, store_code: str,
                    terminal: str, business_date: date, status: SlipStatus,
                    close_no: int = 1, reason: str | None = None, action: str | None = None,
                    status_url: str | None = None, made_at: datetime | None = None
                    ) -> SlipContent:
        """Build from a day plan's totals (``DayPlan.totals``)."""
        return cls(store_name=store_name, store_code=store_code, terminal=terminal,
                   business_date=business_date, method_totals=dict(totals.by_method),
                   class_totals=dict(totals.by_class), gross=totals.gross, tax=totals.tax,
                   status=status, reason=reason, action=action, status_url=status_url,
                   close_no=close_no, made_at=made_at)

    @property
    def key(self) -> str:
        """One slip per store, terminal, date, close and result: the queue's dedupe key."""
        return (f"{self.store_code}/{self.terminal}/{self.business_date.isoformat()}/"
                f"{self.close_no}/{self.status.value}")

    @property
    def title(self) -> str:
        return f"{self.business_date.isoformat()} {self.status.label}"


def status_page_url(*, slip_url: str | None, public_url: str | None, address: str, port: int,
                    hostname: str, scheme: str = "http") -> str | None:
    """The address the slip's QR code holds: one a phone on the shop's network can open.

    ``[slip] status_url``, else ``[web] public_url``, else built from where the page listens:
    a specific address as it is; every address (0.0.0.0, ::) as ``http://<hostname>.local``
    (mDNS, which Raspberry Pi OS answers with avahi); loopback only (127.0.0.1, the default)
    gives None: no phone can open it, so the slip prints no QR code. ``scheme`` is what the
    page serves (https beyond loopback by default, docs/status-page.md).
    """
    for configured in (slip_url, public_url):
        if configured:
            return configured
    if address in ("0.0.0.0", "::"):
        name = hostname.strip().rstrip(".")
        if not name or name == "localhost":
            return None
        host = name if "." in name else f"{name}.local"
    else:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            ip = None
        if address == "localhost" or (ip is not None and ip.is_loopback):
            return None
        host = f"[{address}]" if ip is not None and ip.version == 6 else address
    return f"{scheme}://{host}:{port}/"


# --- a minimal ESC/POS writer -------------------------------------------------------------

ESC_INIT = b"\x1b@"
KATAKANA_PAGE = b"\x1bt\x01"
JAPAN_CHARSET = b"\x1bR\x08"
KANJI_SHIFT_JIS = b"\x1cC\x01"
KANJI_ON = b"\x1c&"
KANJI_OFF = b"\x1c."
ALIGN_LEFT, ALIGN_CENTER = b"\x1ba\x00", b"\x1ba\x01"
BOLD_ON, BOLD_OFF = b"\x1bE\x01", b"\x1bE\x00"
SIZE_NORMAL, SIZE_DOUBLE = b"\x1d!\x00", b"\x1d!\x11"
FEED_AND_CUT = b"\x1dVB\x03"  # partial cut after feeding 3 lines (GS V 66 n)


def encode_text(text: str) -> bytes:
    """CP932 for Kanji mode; ¥ becomes 5Ch (printed as ¥ under ``ESC R 8``)."""
    return text.replace("¥", "\\").encode("cp932", errors="replace")


def text_width(text: str) -> int:
    return len(encode_text(text))


_NO_LINE_START = set("。、，．・：；？！」』）)]}ー々ぁぃぅぇぉっゃゅょァィゥェォッャュョ")


def _pieces(paragraph: str) -> list[str]:
    """ASCII words stay whole; every other character is its own piece."""
    pieces: list[str] = []
    for ch in paragraph:
        word = ch.isascii() and not ch.isspace()
        if word and pieces and pieces[-1].isascii() and not pieces[-1][-1].isspace():
            pieces[-1] += ch
        else:
            pieces.append(ch)
    return pieces


def wrap(text: str, width: int) -> list[str]:
    """Break ``text`` into lines of at most ``width`` printed columns.

    Never inside a character, ASCII words kept whole when they fit, and a closing mark
    (。、」…) never starts a line: the character before it moves down with it.
    """
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for piece in _pieces(paragraph):
            if text_width(current + piece) <= width:
                current += piece
                continue
            if piece.isspace():
                lines.append(current.rstrip())
                current = ""
                continue
            if piece in _NO_LINE_START and len(current) > 1:
                lines.append(current[:-1])
                current = current[-1] + piece
                continue
            if current:
                lines.append(current.rstrip())
            current = ""
            for ch in piece:  # a word longer than the line is cut by width
                if text_width(current + ch) > width and current:
                    lines.append(current)
                    current = ""
                current += ch
        lines.append(current.rstrip())
    return lines


def yen(amount: int) -> str:
    return f"-¥{-amount:,}" if amount < 0 else f"¥{amount:,}"


def two_columns(left: str, right: str, width: int) -> str:
    """``left`` then ``right`` flush right; ``left`` is cut if both do not fit."""
    room = width - text_width(right) - 1
    while text_width(left) > room and left:
        left = left[:-1]
    return left + " " * (width - text_width(left) - text_width(right)) + right


def qr_code(data: str, *, size: int = 6) -> bytes:
    """Native QR (GS ( k): model 2, module ``size``, error correction M, store, print."""

    def fn(code: int, payload: bytes) -> bytes:
        body = b"1" + bytes([code]) + payload  # cn 49 = QR
        return b"\x1d(k" + len(body).to_bytes(2, "little") + body

    raw = data.encode("utf-8")
    return (fn(65, b"2\x00") + fn(67, bytes([size])) + fn(69, b"1")
            + fn(80, b"0" + raw) + fn(81, b"0"))


class _Writer:
    def __init__(self, columns: int) -> None:
        self.columns = columns
        self.out = bytearray(ESC_INIT + KATAKANA_PAGE + JAPAN_CHARSET + KANJI_SHIFT_JIS
                             + KANJI_ON)

    def raw(self, data: bytes) -> None:
        self.out += data

    def line(self, text: str = "") -> None:
        self.out += encode_text(text) + b"\n"

    def rule(self) -> None:
        self.line("-" * self.columns)

    def wrapped(self, text: str, indent: int = 2) -> None:
        for part in wrap(text, self.columns - indent):
            self.line(" " * indent + part)

    def amount(self, label: str, value: str) -> None:
        self.line(two_columns("  " + label, value, self.columns))

    def finish(self) -> bytes:
        self.out += KANJI_OFF + FEED_AND_CUT
        return bytes(self.out)


def render_slip(content: SlipContent, *, columns: int = 42, qr_size: int = 6) -> bytes:
    """The slip as ESC/POS bytes, ending with a cut."""
    w = _Writer(columns)
    w.raw(ALIGN_CENTER + SIZE_DOUBLE)
    w.line("締め結果")
    w.line(f"【{content.status.label}】")
    w.raw(SIZE_NORMAL + ALIGN_LEFT)
    w.line()
    w.line(f"店舗　{content.store_name} ({content.store_code})")
    w.line(f"端末　{content.terminal}")
    w.line(f"営業日　{staff_date(content.business_date)}")
    if content.close_no > 1:
        w.line(f"再締め　{content.close_no}回目")
    w.rule()
    w.line("支払方法別")
    for method in METHOD_ORDER:
        w.amount(METHOD_LABELS[method], yen(content.method_totals.get(method, 0)))
    w.raw(BOLD_ON)
    w.amount("合計", yen(content.gross))
    w.raw(BOLD_OFF)
    w.rule()
    w.line("税区分別(税込)")
    for tax_class in TAX_CLASS_ORDER:
        w.amount(CLASS_LABELS[tax_class], yen(content.class_totals.get(tax_class, 0)))
    w.amount("うち消費税", yen(content.tax) if content.tax is not None else "記録なし")
    w.rule()
    w.raw(BOLD_ON)
    w.line(f"freee会計: {content.status.label}")
    w.raw(BOLD_OFF)
    if content.status is SlipStatus.SENT:
        w.wrapped("この日の売上はfreee会計に登録されました。")
    else:
        w.line("理由:")
        w.wrapped(content.reason or "(理由は記録されていません)")
        w.line("対応:")
        w.wrapped(content.action or "ステータス画面で内容を確認してください。")
    if content.status_url:
        w.rule()
        w.raw(ALIGN_CENTER)
        w.line("状況の確認はこちら")
        w.raw(qr_code(content.status_url, size=qr_size))
        w.line(content.status_url)
        w.raw(ALIGN_LEFT)
    if content.made_at is not None:
        w.rule()
        w.line(f"作成　{staff_datetime(content.made_at)}")
    return w.finish()


def reprint_banner(*, columns: int = 42) -> bytes:
    """Printed before a slip whose earlier attempt may already be on paper."""
    w = _Writer(columns)
    w.raw(ALIGN_CENTER + BOLD_ON)
    w.line("*** 再印刷 ***")
    w.raw(BOLD_OFF + ALIGN_LEFT)
    w.wrapped("前回の印刷が途中で止まった可能性があります。"
              "同じ内容の控えが2枚ある場合は1枚を破棄してください。", 0)
    return bytes(w.out) + KANJI_OFF


def render_notice(title: str, lines: Sequence[str], *, urls: Sequence[str] = (),
                  columns: int = 42, qr_size: int = 6) -> bytes:
    """A short notice slip (first-boot setup, test print): title, wrapped lines, QR of the
    first URL and every URL as text."""
    w = _Writer(columns)
    w.raw(ALIGN_CENTER + SIZE_DOUBLE)
    w.line(title)
    w.raw(SIZE_NORMAL + ALIGN_LEFT)
    w.rule()
    for text in lines:
        w.wrapped(text, indent=0)
    if urls:
        w.rule()
        w.raw(ALIGN_CENTER)
        w.raw(qr_code(urls[0], size=qr_size) + b"\n")
        for url in urls:
            w.line(url)
        w.raw(ALIGN_LEFT)
    return w.finish()
