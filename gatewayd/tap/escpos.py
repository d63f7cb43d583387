"""ESC/POS bytes → print jobs → text lines, for reading reports off a register's print stream.

Pure: timing is passed in as data. ``JobSplitter`` cuts a stream into jobs at a cut command
(``GS V``, ``ESC i``, ``ESC m``) or after an idle gap, never inside a command, and keeps each
job's raw bytes. ``job_lines`` replays a job through a small printer model that knows what
changes text: Kanji mode (``FS &``/``FS .``) and code system (``FS C``), code pages
(``ESC t``), the Japanese character set (``ESC R 8`` prints 5Ch as ¥) and double size
(``GS !``, ``ESC !``). Raster images, barcodes and QR codes are skipped by their declared
length (``gatewayd.escpos_text.tokenize``), so their data is never read as text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from gatewayd.escpos_text import Token, tokenize

CUT_CODES = frozenset({b"\x1dV", b"\x1bi", b"\x1bm"})
_TEXT_BREAKS = frozenset({b"\n", b"\x0c"})
_KATAKANA_PAGES = frozenset({1})  # ESC t 1: half-width katakana at A1h–DFh


def token_length(tok: Token) -> int:
    return len(tok.data) if tok.kind == "text" else len(tok.code) + len(tok.args)


@dataclass(frozen=True, slots=True)
class Job:
    """One print job: its raw bytes and when its first and last byte arrived (seconds)."""

    data: bytes
    started: float
    ended: float
    cut: bool  # ended by a cut command (else by an idle gap or the end of the stream)


@dataclass(slots=True)
class JobSplitter:
    """Feed ``(time, bytes)`` as they arrive; complete jobs come out.

    A job ends just after a cut command, or when ``idle_gap`` seconds pass without a byte
    (``idle(now)``). Bytes are never dropped: a command cut off at the end of a chunk waits
    for the next chunk, and ``finish()`` returns whatever is left as a last job.
    """

    idle_gap: float = 2.0
    _buf: bytearray = field(default_factory=bytearray)
    _scanned: int = 0  # bytes of _buf already tokenized
    _started: float = 0.0
    _last: float = 0.0

    def feed(self, now: float, data: bytes) -> list[Job]:
        jobs: list[Job] = []
        if not data:
            return jobs
        if self._buf and now - self._last >= self.idle_gap:
            jobs.extend(self._take(len(self._buf), cut=False))
        if not self._buf:
            self._started = now
        self._buf.extend(data)
        self._last = now
        jobs.extend(self._split_at_cuts())
        return jobs

    def idle(self, now: float) -> list[Job]:
        """The pending job, when ``idle_gap`` has passed since its last byte."""
        if self._buf and now - self._last >= self.idle_gap:
            return self._take(len(self._buf), cut=False)
        return []

    def finish(self) -> list[Job]:
        return self._take(len(self._buf), cut=False) if self._buf else []

    @property
    def pending(self) -> int:
        return len(self._buf)

    def _split_at_cuts(self) -> list[Job]:
        jobs: list[Job] = []
        while True:
            tokens, covered = tokenize(bytes(self._buf[self._scanned:]))
            offset = self._scanned
            cut_end: int | None = None
            for tok in tokens:
                offset += token_length(tok)
                if tok.kind == "cmd" and tok.code in CUT_CODES:
                    cut_end = offset
                    break
            if cut_end is None:
                self._scanned += covered
                return jobs
            jobs.extend(self._take(cut_end, cut=True))
            if not self._buf:
                return jobs
            self._started = self._last

    def _take(self, n: int, *, cut: bool) -> list[Job]:
        job = Job(bytes(self._buf[:n]), self._started, self._last, cut)
        del self._buf[:n]
        self._scanned = 0
        return [job]


def split_jobs(chunks: Iterable[tuple[float, bytes]], idle_gap: float = 2.0) -> list[Job]:
    """A whole captured stream (chunks with their arrival time) as jobs."""
    splitter = JobSplitter(idle_gap=idle_gap)
    jobs: list[Job] = []
    for now, data in chunks:
        jobs.extend(splitter.feed(now, data))
    jobs.extend(splitter.finish())
    return jobs


@dataclass(frozen=True, slots=True)
class Line:
    """One printed line: its text and whether any of it was printed double width or height."""

    number: int  # 1-based within the job
    text: str
    double: bool


@dataclass(slots=True)
class _Model:
    always_kanji: bool
    kanji_on: bool = False
    sjis: bool = True
    japan_charset: bool = False
    codepage: int = 0
    double: bool = False
    parts: list[str] = field(default_factory=list)
    line_double: bool = False
    lines: list[Line] = field(default_factory=list)

    def reset(self) -> None:
        self.kanji_on = False
        self.sjis = True
        self.japan_charset = False
        self.codepage = 0
        self.double = False

    def put(self, text: str) -> None:
        if text:
            self.parts.append(text)
            self.line_double = self.line_double or self.double

    def end_line(self) -> None:
        self.lines.append(Line(len(self.lines) + 1, "".join(self.parts).rstrip(), self.line_double))
        self.parts = []
        self.line_double = False

    def text(self, data: bytes) -> str:
        kanji = self.kanji_on or self.always_kanji
        if kanji and not self.sjis:
            pairs = data[: len(data) // 2 * 2]
            out = (b"\x1b$B" + pairs + b"\x1b(B").decode("iso2022_jp", errors="replace")
            return out + ("\ufffd" if len(data) % 2 else "")
        chars: list[str] = []
        i = 0
        while i < len(data):
            byte = data[i]
            lead = 0x81 <= byte <= 0x9F or 0xE0 <= byte <= 0xFC
            if kanji and lead and i + 1 < len(data):
                chars.append(data[i:i + 2].decode("cp932", errors="replace"))
                i += 2
                continue
            chars.append(self.single(byte, kanji))
            i += 1
        return "".join(chars)

    def single(self, byte: int, kanji: bool) -> str:
        if byte == 0x5C and self.japan_charset:
            return "¥"
        if byte < 0x80:
            return chr(byte) if byte >= 0x20 else ""
        if 0xA1 <= byte <= 0xDF and (kanji or self.codepage in _KATAKANA_PAGES):
            return bytes([byte]).decode("cp932")
        return bytes([byte]).decode("cp437")


def _apply(model: _Model, tok: Token) -> None:
    if tok.kind == "text":
        model.put(model.text(tok.data))
        return
    code, args = tok.code, tok.args
    if code in _TEXT_BREAKS:
        model.end_line()
    elif code == b"\t":
        model.put(" ")
    elif code == b"\x1b@":
        if model.parts:
            model.end_line()
        model.reset()
    elif code == b"\x1bd":
        model.end_line()
        for _ in range(args[0] - 1 if args[0] > 1 else 0):
            model.end_line()
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
        model.double = args[0] != 0
    elif code == b"\x1b!":
        model.double = bool(args[0] & 0x30)
    elif code == b"\x1c!":
        model.double = bool(args[0] & 0x0C)
    elif code in CUT_CODES and model.parts:
        model.end_line()
    # everything else (images, barcodes, QR, drawer kicks, status queries) prints no text


def job_lines(data: bytes, *, always_kanji: bool = False) -> list[Line]:
    """The text lines a job prints.

    A command whose declared length runs past the end of the job (a truncated image, a barcode
    without its NUL) loses its two command bytes only: what follows is still read, so no text
    after it is lost.

    ``always_kanji``: decode bytes ≥ 80h as CP932 even without ``FS &`` (printers set to
    Shift JIS by their DIP switches; the template says so).
    """
    model = _Model(always_kanji=always_kanji)
    buf = bytes(data)
    start = 0
    while start < len(buf):
        tokens, covered = tokenize(buf[start:])
        for tok in tokens:
            _apply(model, tok)
        start += covered + 2  # covered < rest only at an incomplete command: skip its prefix
    if model.parts:
        model.end_line()
    return model.lines


def job_text(data: bytes, *, always_kanji: bool = False) -> str:
    return "\n".join(ln.text for ln in job_lines(data, always_kanji=always_kanji))
