"""Fuzzing the register link's receiving side: frame decoder, DATA parsers and the host.

The decoder's own tests (test_frames.py) prove its layout rules; here hostile input is thrown
at everything a register's answer passes through, and only typed outcomes are allowed:
- the decoder on long noise, frame-like noise and adversarial repeats: events only, bounded
  memory, time linear enough that a noisy line cannot stall the host;
- the DATA parsers (S, J, K, C answers): a value or ``FrameDataError``, nothing else;
- the host itself (``RegisterHost.poll_once``) against a register that answers each request
  with whatever hypothesis chooses — valid answers with arbitrary DATA and STATUS, stale SEQs,
  NAK, SYN, garbage, silence: only ``GatewayError`` subclasses escape, records reach the sink
  contiguously, and no ``K n`` is ever sent before record n is in the sink (the one rule that
  keeps money from being lost: register-link.md section 4).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import date, datetime

from fuzz_fixtures import FUZZ, FUZZ_SMALL, no_hang
from hypothesis import given, settings
from hypothesis import strategies as st
from reglink_fixtures import MemorySink

from gatewayd.drivers.register_host import HostConfig, RegisterHost
from gatewayd.errors import FrameDataError, FrameRuleError, GatewayError
from gatewayd.protocol.frames import (
    MAX_FRAME,
    NAK,
    SYN,
    Control,
    Frame,
    FrameDecoder,
    FrameKind,
    RegisterStatus,
    StatusInfo,
    encode_response,
    format_record_no,
    parse_clock,
    parse_record_no,
    parse_status_info,
    place_records,
    record_number_field,
    split_journal_data,
)

kinds = st.sampled_from(list(FrameKind))
frame_bytes = st.sampled_from(
    [b"\x01", b"\x03", b"\x04", b"\x05", b"\x15", b"\x16", b"0", b"1", b"?", b" ", b"S", b"J",
     b"\x80", b"\x8f", b"\xff", b"\n", b"\t"]
)


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(stream[last:p])
        last = p
    pieces.append(stream[last:])
    return pieces


# --- the decoder ---------------------------------------------------------------------------


@FUZZ
@given(kinds, st.binary(min_size=0, max_size=20_000), st.lists(st.integers(0, 40_000), max_size=40))
def test_decoder_long_noise_yields_only_events_and_stays_bounded(
    kind: FrameKind, stream: bytes, cuts: list[int]
) -> None:
    decoder = FrameDecoder(kind)
    with no_hang():
        for piece in split(stream, cuts):
            for event in decoder.feed(piece):
                assert isinstance(event, (Frame, Control, FrameRuleError))
                if isinstance(event, Frame):
                    # a frame the decoder accepts re-encodes to bytes of the stream
                    assert event.encode() in stream
            assert decoder.pending <= MAX_FRAME
        last = decoder.discard_partial()
    assert last is None or isinstance(last, FrameRuleError)
    assert decoder.pending == 0


@settings(FUZZ_SMALL, max_examples=60, deadline=None)
@given(kinds, st.lists(frame_bytes, min_size=1, max_size=8).map(b"".join))
def test_decoder_adversarial_repeats_stay_fast(kind: FrameKind, pattern: bytes) -> None:
    """64 KiB of one short pattern repeated (the worst a broken line can send in ~6 s at
    115200 baud) decodes in well under a second: the host's 200 ms byte gap is never eaten by
    the decoder itself."""
    stream = (pattern * (65536 // len(pattern) + 1))[:65536]
    decoder = FrameDecoder(kind)
    start = time.perf_counter()
    with no_hang(10):
        for offset in range(0, len(stream), 8192):  # the host reads 8 KiB at a time
            decoder.feed(stream[offset : offset + 8192])
    assert time.perf_counter() - start < 3.0


# --- DATA parsers ----------------------------------------------------------------------------

tsv_field = st.one_of(
    st.text(alphabet=st.characters(codec="cp932", exclude_characters="¢£¬‖−〜"), max_size=12),
    st.sampled_from(["REGLINK/1", "-", "0", "1", "20250110", "20250110235959", "0001",
                     "999999999999999", "1000000000000000", "01", "20250230", "２"]),
)


@FUZZ
@given(st.one_of(
    st.binary(max_size=300),
    st.lists(tsv_field, min_size=0, max_size=11).map(lambda f: "\t".join(f).encode("cp932")),
))
def test_status_data_parses_or_raises_frame_data_error(data: bytes) -> None:
    try:
        info = parse_status_info(data)
    except FrameDataError:
        return
    assert info.committed_record_no <= info.last_record_no
    assert parse_status_info(info.encode()) == info


@FUZZ
@given(st.one_of(st.binary(max_size=40), st.from_regex(rb"\A-?[0-9]{0,17}\Z")))
def test_number_and_clock_data_parse_or_raise_frame_data_error(data: bytes) -> None:
    try:
        n = parse_record_no(data)
        assert format_record_no(n) == data
    except FrameDataError:
        pass
    try:
        moment = parse_clock(data)
        assert moment.strftime("%Y%m%d%H%M%S").encode() == data
    except FrameDataError:
        pass


@FUZZ
@given(st.integers(1, 10**15 - 1), st.binary(max_size=5000))
def test_journal_data_splits_into_whole_records_only(first: int, data: bytes) -> None:
    chunk = split_journal_data(first, data)
    assert b"".join(line + b"\n" for line in chunk.lines) == data[: len(data) - len(
        data.rsplit(b"\n", 1)[-1])]
    assert all(b"\n" not in line for line in chunk.lines)
    placement = place_records(first - 1, chunk.lines)
    assert [raw for _, raw in placement.records] == list(chunk.lines)
    top, late = first - 1, []
    for number, raw in placement.records:  # own number, or the next one when unreadable
        assert number == (record_number_field(raw) or top + 1)
        if number > top:
            top = number
        else:
            late.append(number)
    assert placement.late == tuple(late) and placement.last == top
    assert (chunk.problem is None) == data.endswith(b"\n") or not data


# --- the host against a hostile register --------------------------------------------------------


class HostileRegister:
    """A Transport whose answers hypothesis chooses, request by request.

    It decodes each request the host writes and answers with a drawn reply. After
    ``budget`` replies it falls silent, so every example ends (the host gives up: LinkDown).
    ``k_sent`` records (n, sink's last stored record at that moment) for every K request.
    """

    name = "hostile"

    def __init__(self, draw: Callable[..., object], sink: MemorySink, budget: int) -> None:
        self.draw = draw
        self.sink = sink
        self.budget = budget
        self.inbox = bytearray()
        self.decoder = FrameDecoder(FrameKind.REQUEST)
        self.k_sent: list[tuple[int, int]] = []
        self.requests: list[Frame] = []
        self.last_record = 0

    def reset_input(self) -> None:
        self.inbox.clear()

    def close(self) -> None:
        pass

    def read(self, n: int, timeout: float) -> bytes:
        if not self.inbox:
            time.sleep(min(timeout, 0.002))
            return b""
        out = bytes(self.inbox[:n])
        del self.inbox[:n]
        return out

    def write(self, data: bytes) -> None:
        for event in self.decoder.feed(data):
            if isinstance(event, Frame):
                self.requests.append(event)
                if event.cmd == "K":
                    self.k_sent.append((int(event.data), self.sink.last_stored_record()))
                self.inbox += self.answer(event)

    def answer(self, request: Frame) -> bytes:
        if self.budget <= 0:
            return b""
        self.budget -= 1
        kind = self.draw(st.sampled_from(
            ["valid", "valid", "valid", "valid", "stale", "nak", "syn", "garbage", "silence",
             "truncated"]))
        if kind == "silence":
            return b""
        if kind == "nak":
            return bytes([NAK])
        if kind == "garbage":
            return bytes(self.draw(st.binary(max_size=200)))  # type: ignore[arg-type]
        status = self.draw(st.one_of(
            st.builds(RegisterStatus, records_waiting=st.booleans(), day_open=st.booleans(),
                      clock_not_set=st.booleans(), refused=st.booleans(),
                      malformed=st.booleans(), out_of_range=st.booleans()).map(
                lambda s: s.encode()),
            st.binary(min_size=6, max_size=6).map(lambda b: bytes(x | 0x80 for x in b)),
        ))
        data = self.answer_data(request)
        seq = request.seq
        if kind == "stale":
            seq = 0x20 + (request.seq - 0x20 + 1) % 96
        try:
            frame = encode_response(seq, request.cmd, data, status)  # type: ignore[arg-type]
        except FrameRuleError:
            frame = b""
        if kind == "truncated":
            frame = frame[: len(frame) // 2]
        prefix = bytes([SYN]) * int(self.draw(st.integers(0, 2)))  # type: ignore[call-overload]
        return prefix + frame

    def answer_data(self, request: Frame) -> bytes:
        if request.cmd == "S":
            last = int(self.draw(st.integers(0, self.last_record + 40)))  # type: ignore[call-overload]
            info = StatusInfo(
                model="FUZZ", firmware="1", store_code="0001", terminal_no="01",
                business_date=date(2025, 1, 10),
                last_record_no=last,
                committed_record_no=int(self.draw(st.integers(0, last))),  # type: ignore[call-overload]
                clock=datetime(2025, 1, 10, 12, 0, 0),
            )
            self.last_record = max(self.last_record, last)
            good = info.encode()
            return bytes(self.draw(st.one_of(st.just(good), st.binary(max_size=80))))  # type: ignore[arg-type]
        if request.cmd == "J":
            first = int(request.data)
            count = int(self.draw(st.integers(0, 6)))  # type: ignore[call-overload]
            lines = b"".join(
                f"{first + i}\tM\t{i + 1}\tIN\tR\t-\t100\t20250110120000\t1\n".encode()
                for i in range(count)
            )
            return bytes(self.draw(st.one_of(  # type: ignore[arg-type]
                st.just(lines),
                st.just(lines[:-3]),
                st.binary(max_size=120).filter(lambda b: not any(
                    (x < 0x20 and x not in (9, 10)) or x == 0x7F for x in b)),
            )))
        if request.cmd == "K":
            return bytes(self.draw(st.one_of(st.just(request.data), st.binary(max_size=16))))  # type: ignore[arg-type]
        return request.data


def hostile_host(register: HostileRegister, sink: MemorySink) -> RegisterHost:
    host = RegisterHost(
        HostConfig("fuzz-01", "hostile", response_timeout=0.01, inter_byte_timeout=0.005,
                   poll_interval=0.0),
        sink,
        transport_factory=lambda: register,  # type: ignore[arg-type, return-value]
        sleep=lambda _s: None,
    )
    host.open()
    return host


class HonestRegister(HostileRegister):
    """The harness with every answer valid: proves the plumbing reaches stores and commits."""

    def answer(self, request: Frame) -> bytes:
        status = RegisterStatus(records_waiting=True).encode()
        if request.cmd == "S":
            info = StatusInfo("FUZZ", "1", "0001", "01", date(2025, 1, 10), 10, 0,
                              datetime(2025, 1, 10, 12, 0, 0))
            return encode_response(request.seq, "S", info.encode(), status)
        if request.cmd == "J":
            first = int(request.data)
            lines = b"".join(f"{n}\tM\n".encode() for n in range(first, 11))
            return encode_response(request.seq, "J", lines, status)
        return encode_response(request.seq, request.cmd, request.data,
                               RegisterStatus().encode())


def test_hostile_harness_reaches_the_sink_and_commits() -> None:
    sink = MemorySink()
    register = HonestRegister(lambda _s: None, sink, 100)
    hostile_host(register, sink).poll_once()
    assert sorted(sink.records) == list(range(1, 11))
    assert register.k_sent == [(10, 10)]


@settings(FUZZ, max_examples=100, deadline=None)
@given(st.data(), st.integers(1, 25))
def test_host_against_hostile_register_commits_only_what_is_stored(
    data: st.DataObject, budget: int
) -> None:
    sink = MemorySink()
    register = HostileRegister(data.draw, sink, budget)
    host = hostile_host(register, sink)
    with no_hang(20):
        for _ in range(3):  # a few polls: each ends normally or with a typed error
            with contextlib.suppress(GatewayError):
                host.poll_once()
    # each record is kept under its own number (field 1), or the next one when unreadable
    for number, raw in sink.records.items():
        assert record_number_field(raw) in (number, None), (number, raw)
    # the rule that protects the money: K n only once record n is stored
    for n, stored in register.k_sent:
        assert n <= stored, f"K {n} sent while only {stored} records were stored"
