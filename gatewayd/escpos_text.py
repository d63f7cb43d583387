"""Printed ESC/POS bytes back to text: for tests, the printer simulator and the demo.

``tokenize`` splits a byte stream into text runs and commands, knowing each command's length
so that arguments are never read as text (and an incomplete command at the end of a chunk is
left for the next one). ``decode`` replays the tokens through a small printer model: Kanji
mode and code system (``FS &``/``FS .``, ``FS C``), the international character set (``ESC R
8`` prints 5Ch as ¥), line feeds, cuts (``[CUT]``), QR codes (``[QR: data]``), drawer kicks
and images. Text in Kanji mode with the Shift JIS system is decoded as CP932; outside Kanji
mode bytes ≥ 80h are single-byte characters, exactly as a Japanese printer would print them —
so a slip sent without ``FS &`` shows up as mojibake here too.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field

ESC, FS, GS, DLE = 0x1B, 0x1C, 0x1D, 0x10
LF, CR, HT, FF, CAN, NUL = 0x0A, 0x0D, 0x09, 0x0C, 0x18, 0x00


@dataclass(frozen=True, slots=True)
class Token:
    """``kind`` is "text" (``data`` = the bytes) or "cmd" (``code`` = prefix, e.g. b"\\x1bp")."""

    kind: str
    code: bytes = b""
    args: bytes = b""
    data: bytes = b""


# Commands with a fixed number of argument bytes after the two-byte prefix.
_FIXED: dict[bytes, int] = {
    **{bytes([ESC, c]): 0 for c in b"@2<=iLmS"},
    **{bytes([ESC, c]): 1 for c in b"!EG-adJetRM 3{VrTU%="},
    bytes([ESC, ord("p")]): 3,
    bytes([ESC, ord("$")]): 2,
    bytes([ESC, ord("\\")]): 2,
    bytes([ESC, ord("W")]): 8,
    bytes([ESC, ord("c")]): 2,
    **{bytes([FS, c]): 0 for c in b"&."},
    **{bytes([FS, c]): 1 for c in b"C!-W"},
    bytes([FS, ord("S")]): 2,
    bytes([FS, ord("p")]): 2,
    **{bytes([GS, c]): 1 for c in b"!BHhwfaIbTr/"},
    **{bytes([GS, c]): 2 for c in b"LW$\\P"},
    bytes([GS, ord("^")]): 3,
    bytes([GS, ord(":")]): 0,
    bytes([DLE, 0x04]): 1,
    bytes([DLE, 0x05]): 1,
}
_VARIABLE = {b"\x1dV", b"\x1d(", b"\x1dv", b"\x1d8", b"\x1b*", b"\x1dk", b"\x1bD", b"\x10\x14"}
_SINGLE_CONTROLS = {LF, CR, HT, FF, CAN, NUL, 0x07, 0x1A}
_PREFIXES = {ESC, FS, GS, DLE}


def _command_length(buf: bytes, i: int) -> int | None:
    """Total length of the command at ``buf[i]`` (a prefix byte); None when incomplete.

    Unknown commands count as their two prefix bytes only.
    """
    if i + 1 >= len(buf):
        return None
    code = buf[i:i + 2]
    end = len(buf)

    def need(n: int) -> int | None:
        return n if i + n <= end else None

    if code in _FIXED:
        return need(2 + _FIXED[code])
    first, second = buf[i], buf[i + 1]
    if first == GS and second == ord("V"):  # GS V m [n]
        if i + 2 >= end:
            return None
        return need(4 if buf[i + 2] in (65, 66, 97, 98, 103, 104) else 3)
    if first == GS and second == ord("("):  # GS ( X pL pH data
        if i + 5 > end:
            return None
        size = buf[i + 3] | buf[i + 4] << 8
        return need(5 + size)
    if first == GS and second == ord("v"):  # GS v 0 m xL xH yL yH d
        if i + 8 > end:
            return None
        width = buf[i + 4] | buf[i + 5] << 8
        height = buf[i + 6] | buf[i + 7] << 8
        return need(8 + width * height)
    if first == GS and second == ord("8") and i + 3 <= end and buf[i + 2] == ord("L"):
        if i + 7 > end:
            return None
        size = int.from_bytes(buf[i + 3:i + 7], "little")
        return need(7 + size)
    if first == ESC and second == ord("*"):  # ESC * m nL nH d
        if i + 5 > end:
            return None
        count = buf[i + 3] | buf[i + 4] << 8
        return need(5 + count * (1 if buf[i + 2] in (0, 1) else 3))
    if first == GS and second == ord("k"):  # GS k m d1..dk NUL | GS k m n d1..dn
        if i + 3 > end:
            return None
        if buf[i + 2] <= 6:
            nul = buf.find(b"\x00", i + 3)
            return None if nul < 0 else nul + 1 - i
        if i + 4 > end:
            return None
        return need(4 + buf[i + 3])
    if first == ESC and second == ord("D"):  # ESC D n1 .. nk NUL
        nul = buf.find(b"\x00", i + 2)
        return None if nul < 0 else nul + 1 - i
    if first == DLE and second == 0x14:  # DLE DC4 fn ...
        if i + 3 > end:
            return None
        return need({1: 5, 2: 5, 7: 5, 8: 10}.get(buf[i + 2], 3))
    return 2


def tokenize(buf: bytes) -> tuple[list[Token], int]:
    """Split ``buf`` into tokens; returns them and how many bytes they cover.

    A command cut off at the end of ``buf`` is not consumed: call again with more bytes.
    """
    buf = bytes(buf)
    tokens: list[Token] = []
    i = 0
    text_start = 0

    def flush_text(upto: int) -> None:
        if upto > text_start:
            tokens.append(Token("text", data=buf[text_start:upto]))

    while i < len(buf):
        byte = buf[i]
        if byte in _PREFIXES:
            length = _command_length(buf, i)
            if length is None:
                flush_text(i)
                return tokens, i
            flush_text(i)
            code = buf[i:i + 2]
            tokens.append(Token("cmd", code=code, args=buf[i + 2:i + length]))
            i += length
            text_start = i
        elif byte in _SINGLE_CONTROLS:
            flush_text(i)
            tokens.append(Token("cmd", code=bytes([byte])))
            i += 1
            text_start = i
        else:
            i += 1
    flush_text(i)
    return tokens, i


@dataclass(frozen=True, slots=True)
class DrawerKick:
    """``ESC p m t1 t2``: pin 2 (m = 0/48) or 5 (m = 1/49), on/off times in ms."""

    pin: int
    on_ms: int
    off_ms: int


def kick_from_args(args: bytes) -> DrawerKick:
    m, t1, t2 = args[0], args[1], args[2]
    return DrawerKick(pin=5 if m in (1, 49) else 2, on_ms=t1 * 2, off_ms=t2 * 2)


@dataclass(slots=True)
class DecodedPrint:
    """What a printer would have put on paper, as text plus the non-text events."""

    lines: list[str] = field(default_factory=list)
    qr_codes: list[str] = field(default_factory=list)
    cuts: int = 0
    kicks: list[DrawerKick] = field(default_factory=list)
    images: int = 0
    unknown: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def display_width(text: str) -> int:
    """Columns on a Japanese printer: full-width (wide/fullwidth/ambiguous kanji) = 2."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


@dataclass(slots=True)
class _PrinterModel:
    columns: int | None
    kanji_on: bool = False
    sjis: bool = False
    japan_charset: bool = False
    codepage: int = 0
    align: int = 0
    width_mult: int = 1
    line: list[str] = field(default_factory=list)
    line_align: int | None = None
    extra_width: int = 0
    out: DecodedPrint = field(default_factory=DecodedPrint)
    qr_store: bytes = b""

    def reset(self) -> None:
        self.kanji_on = False
        self.sjis = False
        self.japan_charset = False
        self.codepage = 0
        self.align = 0
        self.width_mult = 1

    def put(self, text: str) -> None:
        if not text:
            return
        if self.line_align is None:
            self.line_align = self.align
        self.line.append(text)
        # a double-width run takes more columns: count it for alignment
        self.extra_width += display_width(text) * (self.width_mult - 1)

    def end_line(self) -> None:
        text = "".join(self.line)
        width = display_width(text) + self.extra_width
        if self.columns and self.line_align and width < self.columns:
            pad = self.columns - width
            text = " " * (pad // 2 if self.line_align == 1 else pad) + text
        self.out.lines.append(text.rstrip())
        self.line = []
        self.line_align = None
        self.extra_width = 0

    def marker(self, text: str) -> None:
        if self.line:
            self.end_line()
        self.out.lines.append(text)

    def decode_text(self, data: bytes) -> str:
        if self.kanji_on and not self.sjis:
            return self._decode_jis(data)
        chars: list[str] = []
        i = 0
        while i < len(data):
            byte = data[i]
            lead = 0x81 <= byte <= 0x9F or 0xE0 <= byte <= 0xFC
            if self.kanji_on and lead and i + 1 < len(data):
                chars.append(data[i:i + 2].decode("cp932", errors="replace"))
                i += 2
                continue
            chars.append(self._single(byte))
            i += 1
        return "".join(chars)

    def _single(self, byte: int) -> str:
        if byte == 0x5C and self.japan_charset:
            return "¥"
        if byte < 0x80:
            return chr(byte)
        if self.codepage == 1 and 0xA1 <= byte <= 0xDF:
            return bytes([byte]).decode("cp932")
        return bytes([byte]).decode("cp437")

    @staticmethod
    def _decode_jis(data: bytes) -> str:
        pairs = data[: len(data) // 2 * 2]
        return (b"\x1b$B" + pairs + b"\x1b(B").decode("iso2022_jp", errors="replace")


def _apply(model: _PrinterModel, tok: Token) -> None:
    out = model.out
    if tok.kind == "text":
        model.put(model.decode_text(tok.data))
        return
    code, args = tok.code, tok.args
    if code == bytes([LF]):
        model.end_line()
    elif code == bytes([HT]):
        model.put("\t")
    elif code in (bytes([CR]), bytes([NUL]), bytes([CAN]), bytes([0x07])):
        return
    elif code == bytes([FF]):
        model.end_line()
    elif code == b"\x1b@":
        if model.line:
            model.end_line()
        model.reset()
    elif code == b"\x1bd":
        for _ in range(max(args[0], 1)):
            model.end_line()
    elif code == b"\x1ba":
        model.align = args[0] % 48 if args[0] >= 48 else args[0]
    elif code == b"\x1bt":
        model.codepage = args[0]
    elif code == b"\x1bR":
        model.japan_charset = args[0] == 8
    elif code == b"\x1c&":
        model.kanji_on = True
    elif code == b"\x1c.":
        model.kanji_on = False
    elif code == b"\x1cC":
        model.sjis = args[0] in (1, 49)
    elif code == b"\x1d!":
        model.width_mult = (args[0] >> 4) + 1
    elif code == b"\x1b!":
        model.width_mult = 2 if args[0] & 0x20 else 1
    elif code == b"\x1dV":
        if model.line:
            model.end_line()
        out.cuts += 1
        out.lines.append("[CUT]")
    elif code == b"\x1bp":
        kick = kick_from_args(args)
        out.kicks.append(kick)
        model.marker(f"[DRAWER KICK pin {kick.pin}]")
    elif code == b"\x1d(" and args[:1] == b"k" and len(args) >= 5:
        _qr(model, args)
    elif code in (b"\x1dv", b"\x1b*", b"\x1d8") or (code == b"\x1d(" and args[:1] == b"L"):
        out.images += 1
        model.marker("[IMAGE]")
    elif code not in _FIXED and code not in _VARIABLE:
        out.unknown.append(code.hex())


def _qr(model: _PrinterModel, args: bytes) -> None:
    # args = b"k" pL pH cn fn [m] data ; cn 49 = QR
    cn, fn = args[3], args[4]
    if cn != 49:
        return
    if fn == 80:  # store: m (48) then data
        model.qr_store = args[6:]
    elif fn == 81:  # print the stored symbol
        data = model.qr_store.decode("utf-8", errors="replace")
        model.out.qr_codes.append(data)
        model.marker(f"[QR: {data}]")


def decode(data: bytes, *, columns: int | None = None) -> DecodedPrint:
    """Decode a whole print stream. With ``columns``, centred/right lines are padded."""
    model = _PrinterModel(columns=columns)
    tokens, _ = tokenize(data)
    for tok in tokens:
        _apply(model, tok)
    if model.line:
        model.end_line()
    return model.out


def to_text(data: bytes, *, columns: int | None = None) -> str:
    return decode(data, columns=columns).text


def iter_kicks(data: bytes) -> Iterator[DrawerKick]:
    tokens, _ = tokenize(data)
    for tok in tokens:
        if tok.kind == "cmd" and tok.code == b"\x1bp":
            yield kick_from_args(tok.args)
