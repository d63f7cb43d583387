"""Pure decoding of ESC/POS real-time status replies (``DLE EOT n``, one byte each).

Why our own code: python-escpos 3.1 reports "paper adequate" when the printer does not answer
at all (``paper_status()`` returns 2 on an empty reply), so a dead printer would look fine.
Here a missing reply is always ``OFFLINE``.

Every valid reply has bits 1 and 4 set and bits 0 and 7 clear (``0xx1xx10``); anything else
is not a status byte (noise, XON/XOFF, a stray answer) and is rejected by ``is_status_byte``.

| n | bit 2 (0x04)        | bit 3 (0x08)  | bit 5 (0x20)             | bit 6 (0x40)           |
|---|---------------------|---------------|--------------------------|------------------------|
| 1 | drawer pin 3 HIGH   | offline       | waiting for recovery     | feed button pressed    |
| 2 | cover open          | feed by button| stopped by paper end     | error occurred         |
| 3 | recoverable error   | autocutter err| unrecoverable error      | auto-recoverable error |
| 4 | near end (0x0C)     | near end      | paper end (0x60)         | paper end              |
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DLE_EOT = b"\x10\x04"
QUERY_PRINTER = DLE_EOT + b"\x01"
QUERY_OFFLINE_CAUSE = DLE_EOT + b"\x02"
QUERY_ERROR_CAUSE = DLE_EOT + b"\x03"
QUERY_PAPER = DLE_EOT + b"\x04"

_FIXED_MASK = 0x93  # bits 0, 1, 4, 7
_FIXED_VALUE = 0x12  # bits 1 and 4 set, 0 and 7 clear
ALL_CLEAR = 0x12


def is_status_byte(value: int) -> bool:
    """True when ``value`` has the fixed bits of every DLE EOT reply."""
    return 0 <= value <= 0xFF and value & _FIXED_MASK == _FIXED_VALUE


def _bit(value: int, n: int) -> bool:
    return bool(value & (1 << n))


@dataclass(frozen=True, slots=True)
class PrinterBits:
    """``DLE EOT 1``: printer status."""

    drawer_pin3_high: bool
    offline: bool
    waiting_recovery: bool
    feed_button: bool


@dataclass(frozen=True, slots=True)
class OfflineCause:
    """``DLE EOT 2``: why the printer is offline."""

    cover_open: bool
    feeding: bool
    paper_end_stop: bool
    error: bool


@dataclass(frozen=True, slots=True)
class ErrorCause:
    """``DLE EOT 3``: which error (model-dependent bits)."""

    recoverable: bool
    autocutter: bool
    unrecoverable: bool
    auto_recoverable: bool


@dataclass(frozen=True, slots=True)
class PaperBits:
    """``DLE EOT 4``: roll paper sensors (either bit of a pair counts)."""

    near_end: bool
    end: bool


def decode_printer(value: int) -> PrinterBits:
    return PrinterBits(_bit(value, 2), _bit(value, 3), _bit(value, 5), _bit(value, 6))


def decode_offline_cause(value: int) -> OfflineCause:
    return OfflineCause(_bit(value, 2), _bit(value, 3), _bit(value, 5), _bit(value, 6))


def decode_error_cause(value: int) -> ErrorCause:
    return ErrorCause(_bit(value, 2), _bit(value, 3), _bit(value, 5), _bit(value, 6))


def decode_paper(value: int) -> PaperBits:
    return PaperBits(near_end=bool(value & 0x0C), end=bool(value & 0x60))


class PrinterCondition(StrEnum):
    """The one word the status page shows; ordered by what staff must do first."""

    READY = "ready"
    PAPER_NEAR_END = "paper_near_end"
    PAPER_END = "paper_end"
    COVER_OPEN = "cover_open"
    ERROR = "error"
    OFFLINE = "offline"


STAFF_MESSAGES: dict[PrinterCondition, str] = {
    PrinterCondition.READY: "プリンターは正常です。",
    PrinterCondition.PAPER_NEAR_END: "レシート用紙が残りわずかです。早めに交換してください。",
    PrinterCondition.PAPER_END: "レシート用紙がありません。用紙を補充してください。",
    PrinterCondition.COVER_OPEN: "プリンターのカバーが開いています。カバーを閉めてください。",
    PrinterCondition.ERROR: "プリンターでエラーが発生しました。電源を入れ直してください。",
    PrinterCondition.OFFLINE: "プリンターがオフラインです。電源とケーブルを確認してください。",
}
NO_ANSWER_MESSAGE = "プリンターが応答しません。電源とケーブルを確認してください。"


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """One poll's result. ``answered`` False means the printer was silent: OFFLINE."""

    answered: bool
    printer: PrinterBits | None = None
    offline_cause: OfflineCause | None = None
    paper: PaperBits | None = None
    error_cause: ErrorCause | None = None

    @property
    def online(self) -> bool:
        return self.answered and self.printer is not None and not self.printer.offline

    @property
    def cover_open(self) -> bool:
        return self.offline_cause is not None and self.offline_cause.cover_open

    @property
    def paper_end(self) -> bool:
        by_sensor = self.paper is not None and self.paper.end
        by_stop = self.offline_cause is not None and self.offline_cause.paper_end_stop
        return by_sensor or by_stop

    @property
    def paper_near_end(self) -> bool:
        return self.paper is not None and self.paper.near_end

    @property
    def error(self) -> bool:
        return self.offline_cause is not None and self.offline_cause.error

    @property
    def drawer_pin3_high(self) -> bool | None:
        """Pin 3 level, or None when the printer did not answer."""
        return self.printer.drawer_pin3_high if self.printer is not None else None

    @property
    def condition(self) -> PrinterCondition:
        """Silent → OFFLINE; then the most specific cause staff can act on."""
        if not self.answered or self.printer is None:
            return PrinterCondition.OFFLINE
        if self.cover_open:
            return PrinterCondition.COVER_OPEN
        if self.paper_end:
            return PrinterCondition.PAPER_END
        if self.error:
            return PrinterCondition.ERROR
        if self.printer.offline:
            return PrinterCondition.OFFLINE
        if self.paper_near_end:
            return PrinterCondition.PAPER_NEAR_END
        return PrinterCondition.READY

    @property
    def can_print(self) -> bool:
        return self.condition in (PrinterCondition.READY, PrinterCondition.PAPER_NEAR_END)

    @property
    def staff_message(self) -> str:
        if not self.answered:
            return NO_ANSWER_MESSAGE
        return STAFF_MESSAGES[self.condition]

    def describe(self) -> str:
        """English one-liner for logs: condition plus every raised flag."""
        if not self.answered:
            return "offline (no answer to DLE EOT)"
        flags = [name for name, on in (
            ("offline", self.printer is not None and self.printer.offline),
            ("cover open", self.cover_open),
            ("paper end", self.paper_end),
            ("paper near end", self.paper_near_end),
            ("error", self.error),
            ("autocutter error", self.error_cause is not None and self.error_cause.autocutter),
            ("unrecoverable error",
             self.error_cause is not None and self.error_cause.unrecoverable),
        ) if on]
        return f"{self.condition.value}" + (f" ({', '.join(flags)})" if flags else "")


SILENT = PrinterStatus(answered=False)


def status_from_replies(n1: int | None, n2: int | None = None, n4: int | None = None,
                        n3: int | None = None) -> PrinterStatus:
    """Combine the replies of one poll. A missing or invalid n=1 reply means silent."""
    if n1 is None or not is_status_byte(n1):
        return SILENT
    return PrinterStatus(
        answered=True,
        printer=decode_printer(n1),
        offline_cause=decode_offline_cause(n2) if n2 is not None and is_status_byte(n2)
        else None,
        paper=decode_paper(n4) if n4 is not None and is_status_byte(n4) else None,
        error_cause=decode_error_cause(n3) if n3 is not None and is_status_byte(n3) else None,
    )
