"""REGLINK/1 frames (register-link.md sections 2–4): encoder, streaming decoder, status.

Pure code, no I/O: both the host (``drivers.register_host``) and the register simulator
(``sim.register``) use it, so the two sides cannot drift apart. The decoder takes bytes in
any split and never raises: every malformed frame becomes a ``FrameRuleError`` *event* whose
``rule`` names the broken layout rule, and decoding resumes one byte after the bad frame's
01, so a valid frame hidden in garbage is still found.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum, IntEnum

from gatewayd.errors import FrameDataError, FrameRuleError

SOH = 0x01
ETX = 0x03
SEP = 0x04  # before STATUS, responses only
ENQ = 0x05  # end of data
NAK = 0x15
SYN = 0x16

SEQ_MIN = 0x20
SEQ_MAX = 0x7F
SEQ_COUNT = SEQ_MAX - SEQ_MIN + 1
MAX_DATA = 4096
STATUS_LEN = 6
REQUEST_L_MIN = 2
REQUEST_L_MAX = MAX_DATA + 2
RESPONSE_L_MIN = 9
RESPONSE_L_MAX = MAX_DATA + 9
FRAME_OVERHEAD = 11  # 01, LEN(4), 05, BCC(4), 03 around the L bytes
MAX_FRAME = RESPONSE_L_MAX + FRAME_OVERHEAD

PROTOCOL_NAME = "REGLINK/1"
CMD_STATUS = "S"
CMD_JOURNAL = "J"
CMD_COMMIT = "K"
CMD_CLOCK = "C"

_FORBIDDEN_DATA = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")
_RECORD_NO = re.compile(rb"0|[1-9][0-9]{0,14}")
_CODE = re.compile(r"[A-Za-z0-9]{1,8}")


class FrameKind(Enum):
    """Which direction a frame travels: requests go host → register."""

    REQUEST = "request"
    RESPONSE = "response"


class Control(IntEnum):
    """Single control bytes sent outside any frame."""

    NAK = NAK
    SYN = SYN


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame. ``status`` is the six STATUS bytes of a response, None for a request."""

    seq: int
    cmd: str
    data: bytes = b""
    status: bytes | None = None

    @property
    def kind(self) -> FrameKind:
        return FrameKind.REQUEST if self.status is None else FrameKind.RESPONSE

    @property
    def register_status(self) -> RegisterStatus:
        if self.status is None:
            raise ValueError("a request frame has no status bytes")
        return RegisterStatus.decode(self.status)

    def encode(self) -> bytes:
        if self.status is None:
            return encode_request(self.seq, self.cmd, self.data)
        return encode_response(self.seq, self.cmd, self.data, self.status)


DecodeEvent = Frame | Control | FrameRuleError


# --- encoding ------------------------------------------------------------------------------


def encode_nibbles(value: int) -> bytes:
    """A 16-bit value as 4 nibbles, most significant first, each + 0x30 (LEN and BCC)."""
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"nibble value {value} outside 0..65535")
    return bytes(0x30 + ((value >> shift) & 0xF) for shift in (12, 8, 4, 0))


def checksum(body: bytes) -> int:
    """The BCC: 16-bit sum of every byte from the first LEN byte through 05."""
    return sum(body) & 0xFFFF


def _check_fields(seq: int, cmd: str, data: bytes) -> None:
    if not SEQ_MIN <= seq <= SEQ_MAX:
        raise FrameRuleError(f"SEQ 0x{seq:02X} outside 0x20..0x7F", rule="SEQ")
    if len(cmd) != 1 or not "A" <= cmd <= "Z":
        raise FrameRuleError(f"CMD {cmd!r} is not an ASCII capital letter", rule="CMD")
    if len(data) > MAX_DATA:
        raise FrameRuleError(f"DATA of {len(data)} bytes exceeds {MAX_DATA}", rule="L")
    bad = _FORBIDDEN_DATA.search(data)
    if bad is not None:
        raise FrameRuleError(
            f"forbidden byte 0x{bad.group()[0]:02X} at DATA offset {bad.start()}", rule="DATA"
        )


def _wrap(inner: bytes) -> bytes:
    body = encode_nibbles(len(inner)) + inner + bytes([ENQ])
    return bytes([SOH]) + body + encode_nibbles(checksum(body)) + bytes([ETX])


def encode_request(seq: int, cmd: str, data: bytes = b"") -> bytes:
    """``01 LEN SEQ CMD DATA 05 BCC 03``; raises FrameRuleError for a field that breaks a rule."""
    _check_fields(seq, cmd, data)
    return _wrap(bytes([seq, ord(cmd)]) + data)


def encode_response(seq: int, cmd: str, data: bytes, status: bytes) -> bytes:
    """``01 LEN SEQ CMD DATA 04 STATUS 05 BCC 03``."""
    _check_fields(seq, cmd, data)
    if len(status) != STATUS_LEN or any(b < 0x80 for b in status):
        raise FrameRuleError(f"STATUS {status.hex()} is not six bytes >= 0x80", rule="STATUS")
    return _wrap(bytes([seq, ord(cmd)]) + data + bytes([SEP]) + status)


def next_seq(seq: int) -> int:
    """The SEQ after ``seq``: 0x20, 0x21, … 0x7F, then 0x20 again."""
    return SEQ_MIN + (seq - SEQ_MIN + 1) % SEQ_COUNT


# --- streaming decoder ---------------------------------------------------------------------


class FrameDecoder:
    """Streaming decoder for one direction; feed it bytes in any split.

    ``feed`` returns events in stream order: ``Frame``, ``Control.NAK`` / ``Control.SYN``
    (SYN only in the response direction: only a register sends it) and ``FrameRuleError``
    for each malformed frame. Between frames every byte but 01 (and the control bytes) is
    skipped. After an error, scanning restarts at the byte after the bad frame's 01.
    Memory is bounded by one maximal frame.
    """

    def __init__(self, kind: FrameKind) -> None:
        self.kind = kind
        self._l_min, self._l_max = (
            (REQUEST_L_MIN, REQUEST_L_MAX)
            if kind is FrameKind.REQUEST
            else (RESPONSE_L_MIN, RESPONSE_L_MAX)
        )
        self._buf = bytearray()  # buf[0] == SOH whenever it is not empty
        self._checked = 0  # bytes of buf already validated
        self._length = 0  # L once the LEN bytes are in, else 0
        self.skipped = 0  # bytes dropped while hunting for 01 (metrics)

    @property
    def pending(self) -> int:
        """Bytes of a frame begun but not finished (0 while hunting for 01)."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget any partial frame."""
        self._buf.clear()
        self._checked = 0
        self._length = 0

    def discard_partial(self) -> FrameRuleError | None:
        """Drop a partial frame (after a silence); returns the error to report, if any."""
        if not self._buf:
            return None
        n = len(self._buf)
        self.reset()
        return FrameRuleError(
            f"{self.kind.value} frame cut off after {n} bytes (silence)", rule="partial"
        )

    def feed(self, data: bytes) -> list[DecodeEvent]:
        return list(self.iter_feed(data))

    def iter_feed(self, data: bytes) -> Iterator[DecodeEvent]:
        pending = memoryview(bytes(data))
        pos = 0
        while True:
            if not self._buf:
                # hunting: skip to the next 01, reporting control bytes on the way
                while pos < len(pending):
                    byte = pending[pos]
                    pos += 1
                    if byte == SOH:
                        self._buf.append(SOH)
                        self._checked = 1
                        break
                    if byte == NAK or (byte == SYN and self.kind is FrameKind.RESPONSE):
                        yield Control(byte)
                    else:
                        self.skipped += 1
                if not self._buf:
                    return
            # take at most what completes the frame (or its LEN when L is still unknown)
            want = (self._length + FRAME_OVERHEAD if self._length else 5) - len(self._buf)
            take = min(want, len(pending) - pos)
            self._buf += pending[pos : pos + take]
            pos += take
            event = self._advance()
            if event is None:
                if pos >= len(pending):
                    return
                continue
            if isinstance(event, Frame):
                self.reset()
                yield event
                continue
            # malformed: report it, then rescan everything after the bad frame's 01
            rest = bytes(self._buf[1:]) + bytes(pending[pos:])
            self.reset()
            yield event
            pending = memoryview(rest)
            pos = 0

    def _fail(self, rule: str, message: str) -> FrameRuleError:
        return FrameRuleError(f"{self.kind.value} {message}", rule=rule)

    def _advance(self) -> Frame | FrameRuleError | None:
        """Validate new bytes of buf; a Frame when complete, an error, or None for more."""
        buf = self._buf
        end = len(buf)
        i = entry = self._checked
        while i < min(end, 5):
            if not 0x30 <= buf[i] <= 0x3F:
                return self._fail("LEN", f"LEN byte {i} is 0x{buf[i]:02X}, not 0x30..0x3F")
            i += 1
        self._checked = i
        if end < 5:
            return None
        if not self._length:
            length = 0
            for b in buf[1:5]:
                length = (length << 4) | (b - 0x30)
            if not self._l_min <= length <= self._l_max:
                return self._fail(
                    "L", f"L={length} outside {self._l_min}..{self._l_max}"
                )
            self._length = length
        length = self._length
        data_start = 7
        data_end = 5 + length if self.kind is FrameKind.REQUEST else 5 + length - 7
        enq_at = 5 + length
        if i == 5 and end > 5:
            if not SEQ_MIN <= buf[5] <= SEQ_MAX:
                return self._fail("SEQ", f"SEQ 0x{buf[5]:02X} outside 0x20..0x7F")
            i = 6
        if i == 6 and end > 6:
            if not 0x41 <= buf[6] <= 0x5A:
                return self._fail("CMD", f"CMD 0x{buf[6]:02X} is not an ASCII capital letter")
            i = 7
        if data_start <= i < data_end:
            stop = min(end, data_end)
            bad = _FORBIDDEN_DATA.search(buf, i, stop)
            if bad is not None:
                return self._fail(
                    "DATA",
                    f"forbidden byte 0x{buf[bad.start()]:02X} in DATA at frame offset "
                    f"{bad.start()}" + (" (04/05/01 before where LEN says)"
                                        if buf[bad.start()] in (SOH, SEP, ENQ) else ""),
                )
            i = stop
        if self.kind is FrameKind.RESPONSE:
            if i == data_end and end > i:
                if buf[i] != SEP:
                    return self._fail(
                        "04", f"byte 0x{buf[i]:02X} at offset {i} where LEN puts the 04"
                    )
                i += 1
            while data_end < i < enq_at and i < end:
                if buf[i] < 0x80:
                    return self._fail(
                        "STATUS", f"STATUS byte {i - data_end - 1} is 0x{buf[i]:02X}, below 0x80"
                    )
                i += 1
        if i == enq_at and end > i:
            if buf[i] != ENQ:
                return self._fail("05", f"byte 0x{buf[i]:02X} at offset {i} where LEN puts the 05")
            i += 1
        while enq_at < i < enq_at + 5 and i < end:
            if not 0x30 <= buf[i] <= 0x3F:
                return self._fail("BCC", f"BCC byte {i - enq_at - 1} is 0x{buf[i]:02X}")
            i += 1
        if i == enq_at + 5 and entry < i:  # BCC complete: check it once
            expected = checksum(bytes(buf[1 : enq_at + 1]))
            got = 0
            for b in buf[enq_at + 1 : enq_at + 5]:
                got = (got << 4) | (b - 0x30)
            if got != expected:
                return self._fail("BCC", f"BCC 0x{got:04X} does not match the sum 0x{expected:04X}")
        if i == enq_at + 5 and end > i:
            if buf[i] != ETX:
                return self._fail(
                    "03", f"byte 0x{buf[i]:02X} at offset {i} where LEN says the 03 belongs"
                )
            i += 1
        self._checked = i
        if i < enq_at + 6:
            return None
        seq, cmd = buf[5], chr(buf[6])
        if self.kind is FrameKind.REQUEST:
            return Frame(seq, cmd, bytes(buf[7:data_end]))
        return Frame(seq, cmd, bytes(buf[7:data_end]), bytes(buf[data_end + 1 : enq_at]))


def decode_all(kind: FrameKind, stream: bytes) -> list[DecodeEvent]:
    """Decode a complete byte string (tests, captures); a trailing partial frame is dropped."""
    return FrameDecoder(kind).feed(stream)


# --- status bytes (section 3) --------------------------------------------------------------


class RefusalReason(Enum):
    MALFORMED = "malformed"
    UNKNOWN_COMMAND = "unknown command"
    OUT_OF_RANGE = "record number out of range"
    UNSPECIFIED = "unspecified"


@dataclass(frozen=True, slots=True)
class RegisterStatus:
    """The six STATUS bytes of a response, as flags (reserved bits are kept only in ``raw``)."""

    day_open: bool = False
    records_waiting: bool = False
    close_waiting: bool = False
    clock_not_set: bool = False
    refused: bool = False
    malformed: bool = False
    unknown_command: bool = False
    out_of_range: bool = False
    journal_nearly_full: bool = False
    journal_full: bool = False

    @classmethod
    def decode(cls, status: bytes) -> RegisterStatus:
        if len(status) != STATUS_LEN or any(b < 0x80 for b in status):
            raise FrameRuleError(f"STATUS {status.hex()} is not six bytes >= 0x80", rule="STATUS")
        s0, s1, s2 = status[0], status[1], status[2]
        return cls(
            day_open=bool(s0 & 1),
            records_waiting=bool(s0 & 2),
            close_waiting=bool(s0 & 4),
            clock_not_set=bool(s0 & 8),
            refused=bool(s1 & 1),
            malformed=bool(s1 & 2),
            unknown_command=bool(s1 & 4),
            out_of_range=bool(s1 & 8),
            journal_nearly_full=bool(s2 & 1),
            journal_full=bool(s2 & 2),
        )

    def encode(self) -> bytes:
        s0 = self.day_open | self.records_waiting << 1 | self.close_waiting << 2
        s0 |= self.clock_not_set << 3
        s1 = self.refused | self.malformed << 1 | self.unknown_command << 2
        s1 |= self.out_of_range << 3
        s2 = self.journal_nearly_full | self.journal_full << 1
        return bytes([0x80 | s0, 0x80 | s1, 0x80 | s2, 0x80, 0x80, 0x80])

    @property
    def refusal(self) -> RefusalReason | None:
        """Why the request was refused, or None when it was not."""
        if not self.refused:
            return None
        if self.malformed:
            return RefusalReason.MALFORMED
        if self.unknown_command:
            return RefusalReason.UNKNOWN_COMMAND
        if self.out_of_range:
            return RefusalReason.OUT_OF_RANGE
        return RefusalReason.UNSPECIFIED


# --- DATA forms (section 4) ----------------------------------------------------------------


def format_record_no(number: int) -> bytes:
    """A record number as request/response DATA: 1–15 decimal digits, no sign or zeros."""
    if not 0 <= number <= 10**15 - 1:
        raise ValueError(f"record number {number} outside 0..999999999999999")
    return str(number).encode("ascii")


def parse_record_no(data: bytes) -> int:
    """Parse a record number DATA; FrameDataError when it is not of the section 4 form."""
    if _RECORD_NO.fullmatch(data) is None:
        raise FrameDataError(f"record number {data[:32]!r} is not 1-15 digits without zeros")
    return int(data)


CLOCK_FORMAT = "%Y%m%d%H%M%S"


def format_clock(moment: datetime) -> bytes:
    return moment.strftime(CLOCK_FORMAT).encode("ascii")


def parse_clock(data: bytes) -> datetime:
    """``YYYYMMDDhhmmss``, a real date and time (naive: the store's local time)."""
    if len(data) != 14 or not data.isdigit():
        raise FrameDataError(f"clock {data[:32]!r} is not YYYYMMDDhhmmss")
    try:
        return datetime.strptime(data.decode("ascii"), CLOCK_FORMAT)
    except ValueError as exc:
        raise FrameDataError(f"clock {data!r} is not a real time: {exc}") from None


def _parse_date(text: str) -> date:
    if len(text) != 8 or not text.isdigit():
        raise FrameDataError(f"business_date {text!r} is not YYYYMMDD or -")
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise FrameDataError(f"business_date {text!r} is not a real date") from None


@dataclass(frozen=True, slots=True)
class StatusInfo:
    """The DATA of an ``S`` response."""

    model: str
    firmware: str
    store_code: str
    terminal_no: str
    business_date: date | None
    last_record_no: int
    committed_record_no: int
    clock: datetime
    protocol: str = PROTOCOL_NAME

    def encode(self) -> bytes:
        fields = [
            self.protocol,
            self.model,
            self.firmware,
            self.store_code,
            self.terminal_no,
            self.business_date.strftime("%Y%m%d") if self.business_date else "-",
            str(self.last_record_no),
            str(self.committed_record_no),
            self.clock.strftime(CLOCK_FORMAT),
        ]
        return "\t".join(fields).encode("cp932")


def parse_status_info(data: bytes) -> StatusInfo:
    """Parse ``S`` response DATA; FrameDataError names the first field that is wrong."""
    try:
        text = data.decode("cp932")
    except UnicodeDecodeError as exc:
        raise FrameDataError(f"S response is not CP932: {exc}") from None
    fields = text.split("\t")
    if len(fields) != 9:
        raise FrameDataError(f"S response has {len(fields)} fields, expected 9")
    protocol, model, firmware, store, terminal, bdate, last, committed, clock = fields
    if protocol != PROTOCOL_NAME:
        raise FrameDataError(f"S response protocol {protocol!r}, expected {PROTOCOL_NAME}")
    for name, value in (("model", model), ("firmware", firmware)):
        if not value:
            raise FrameDataError(f"S response {name} is empty")
    for name, value in (("store_code", store), ("terminal_no", terminal)):
        if _CODE.fullmatch(value) is None:
            raise FrameDataError(f"S response {name} {value!r} is not 1-8 letters or digits")
    numbers = []
    for name, value in (("last_record_no", last), ("committed_record_no", committed)):
        try:
            numbers.append(parse_record_no(value.encode("ascii")))
        except (FrameDataError, UnicodeEncodeError):
            raise FrameDataError(f"S response {name} {value!r} is not a record number") from None
    if numbers[1] > numbers[0]:
        raise FrameDataError(
            f"S response committed_record_no {numbers[1]} above last_record_no {numbers[0]}"
        )
    return StatusInfo(
        model=model,
        firmware=firmware,
        store_code=store,
        terminal_no=terminal,
        business_date=None if bdate == "-" else _parse_date(bdate),
        last_record_no=numbers[0],
        committed_record_no=numbers[1],
        clock=parse_clock(clock.encode("ascii", "replace")),
        protocol=protocol,
    )


# --- J response DATA -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JournalChunk:
    """The whole records of a ``J n`` response (each without its LF), in the order sent.

    ``problem`` says why a trailing partial record (no LF) was not taken; the host asks again
    from after the last record it stored. Numbering is ``place_records``'s job.
    """

    first_no: int
    lines: tuple[bytes, ...]
    problem: str | None = None


def record_number_field(line: bytes) -> int | None:
    """Field 1 of a raw record as a number, or None when it is not one."""
    head = line.split(b"\t", 1)[0]
    if _RECORD_NO.fullmatch(head) is None or head == b"0":
        return None
    return int(head)


def split_journal_data(first_no: int, data: bytes) -> JournalChunk:
    """Split ``J first_no`` DATA into whole records (see ``JournalChunk``)."""
    parts = data.split(b"\n")
    whole, tail = parts[:-1], parts[-1]
    problem = (
        f"partial record of {len(tail)} bytes without LF after {len(whole)} whole record(s)"
        if tail else None
    )
    return JournalChunk(first_no, tuple(whole), problem)


@dataclass(frozen=True, slots=True)
class Placement:
    """The records of one ``J`` answer, each under the number it will be stored at.

    ``records`` are ``(number, raw)`` in the order sent: the number is field 1 (section 4:
    a record is stored under its own number, never under its place in the answer). A record
    whose field 1 cannot be read gets the next number after the highest one before it, and is
    listed in ``unnumbered`` (its day is held by ``format``). ``gaps`` are the runs of numbers
    the register skipped, ``(first missing, last missing)``, counted from ``last_stored``.
    ``late`` are the numbers that do not come above every number before them (a repeat, or a
    register going backwards): the store keeps such a record once, or aside, never twice.
    ``last`` is the highest number in the answer (``last_stored`` when there is none above).
    """

    records: tuple[tuple[int, bytes], ...]
    gaps: tuple[tuple[int, int], ...]
    unnumbered: tuple[int, ...]
    late: tuple[int, ...]
    last: int

    @property
    def missing(self) -> int:
        """How many numbers the register skipped in this answer."""
        return sum(b - a + 1 for a, b in self.gaps)


def place_records(last_stored: int, lines: Sequence[bytes]) -> Placement:
    """Number the records of a ``J last_stored + 1`` answer (see ``Placement``)."""
    top = last_stored
    records: list[tuple[int, bytes]] = []
    gaps: list[tuple[int, int]] = []
    unnumbered: list[int] = []
    late: list[int] = []
    for raw in lines:
        number = record_number_field(raw)
        if number is None:
            number = top + 1
            unnumbered.append(number)
        if number > top + 1:
            gaps.append((top + 1, number - 1))
        if number <= top:
            late.append(number)
        else:
            top = number
        records.append((number, bytes(raw)))
    return Placement(tuple(records), tuple(gaps), tuple(unnumbered), tuple(late), top)


def pack_records(records: Sequence[bytes], limit: int = MAX_DATA) -> int:
    """How many of ``records`` (each without LF) fit whole, each + LF, in ``limit`` bytes."""
    total = 0
    for count, record in enumerate(records):
        total += len(record) + 1
        if total > limit:
            return count
    return len(records)
