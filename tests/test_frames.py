"""REGLINK/1 frame codec: worked example, every layout rule, property tests of the decoder."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatewayd.errors import FrameDataError, FrameError, FrameRuleError
from gatewayd.protocol.frames import (
    Control,
    Frame,
    FrameDecoder,
    FrameKind,
    RefusalReason,
    RegisterStatus,
    StatusInfo,
    checksum,
    decode_all,
    encode_nibbles,
    encode_request,
    encode_response,
    format_record_no,
    next_seq,
    pack_records,
    parse_record_no,
    parse_status_info,
    place_records,
    split_journal_data,
)

WORKED = bytes.fromhex("01 30 30 30 32 20 53 05 30 31 33 3A 03")
OK_STATUS = RegisterStatus(day_open=True).encode()

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def frames_of(events: list[object]) -> list[Frame]:
    return [e for e in events if isinstance(e, Frame)]


def errors_of(events: list[object]) -> list[FrameRuleError]:
    return [e for e in events if isinstance(e, FrameRuleError)]


# --- worked example and basics -------------------------------------------------------------


def test_worked_example_encodes_exactly() -> None:
    assert encode_request(0x20, "S") == WORKED
    assert checksum(WORKED[1:8]) == 0x013A


def test_worked_example_decodes_exactly() -> None:
    assert decode_all(FrameKind.REQUEST, WORKED) == [Frame(0x20, "S", b"")]


def test_worked_example_byte_by_byte() -> None:
    decoder = FrameDecoder(FrameKind.REQUEST)
    events: list[object] = []
    for i, b in enumerate(WORKED):
        events += decoder.feed(bytes([b]))
        assert decoder.pending == (i + 1 if i < len(WORKED) - 1 else 0)
    assert events == [Frame(0x20, "S", b"")]
    assert decoder.pending == 0


def test_response_layout() -> None:
    raw = encode_response(0x7F, "K", b"12", OK_STATUS)
    # L = SEQ + CMD + 2 DATA + 04 + 6 STATUS = 11
    assert raw[1:5] == b"000;"
    assert raw[7:9] == b"12" and raw[9] == 0x04 and raw[10:16] == OK_STATUS and raw[16] == 0x05
    assert raw[-1] == 0x03
    [frame] = decode_all(FrameKind.RESPONSE, raw)
    assert frame == Frame(0x7F, "K", b"12", OK_STATUS)
    assert frame.encode() == raw


def test_nibbles() -> None:
    assert encode_nibbles(0x1AE3) == b"1:>3"
    assert encode_nibbles(0) == b"0000"
    with pytest.raises(ValueError):
        encode_nibbles(0x10000)


def test_next_seq_wraps() -> None:
    assert next_seq(0x20) == 0x21
    assert next_seq(0x7F) == 0x20


def test_control_bytes_per_direction() -> None:
    assert decode_all(FrameKind.RESPONSE, b"\x16\x15x") == [Control.SYN, Control.NAK]
    # only a register sends SYN: the request side skips it
    assert decode_all(FrameKind.REQUEST, b"\x16\x15x") == [Control.NAK]


def test_max_size_frames() -> None:
    data = b"A" * 4096
    assert frames_of(decode_all(FrameKind.REQUEST, encode_request(0x30, "J", data)))[0].data == data
    resp = encode_response(0x30, "J", data, OK_STATUS)
    assert frames_of(decode_all(FrameKind.RESPONSE, resp))[0].data == data
    with pytest.raises(FrameRuleError) as exc:
        encode_request(0x30, "J", data + b"A")
    assert exc.value.rule == "L"


def test_tab_and_lf_allowed_in_data() -> None:
    raw = encode_response(0x30, "J", "1\tO\t日本\n".encode("cp932"), OK_STATUS)
    assert frames_of(decode_all(FrameKind.RESPONSE, raw))[0].data == "1\tO\t日本\n".encode("cp932")


@pytest.mark.parametrize(
    ("seq", "cmd", "data", "rule"),
    [(0x1F, "S", b"", "SEQ"), (0x80, "S", b"", "SEQ"), (0x20, "s", b"", "CMD"),
     (0x20, "SS", b"", "CMD"), (0x20, "J", b"1\x7f", "DATA"), (0x20, "J", b"\x00", "DATA")],
)
def test_encoder_rejects_bad_fields(seq: int, cmd: str, data: bytes, rule: str) -> None:
    with pytest.raises(FrameRuleError) as exc:
        encode_request(seq, cmd, data)
    assert exc.value.rule == rule


def test_encoder_rejects_bad_status() -> None:
    with pytest.raises(FrameRuleError) as exc:
        encode_response(0x20, "S", b"", b"\x80\x80\x80\x80\x80\x7f")
    assert exc.value.rule == "STATUS"


# --- each layout rule violated -------------------------------------------------------------


def rebcc(raw: bytearray) -> bytes:
    """Recompute the BCC of a (deliberately broken) frame so only the intended rule fails."""
    enq = len(raw) - 6
    raw[enq + 1 : enq + 5] = encode_nibbles(checksum(bytes(raw[1 : enq + 1])))
    return bytes(raw)


def broken(kind: FrameKind, edit: str) -> bytes:
    """A valid frame with exactly one rule broken."""
    if kind is FrameKind.REQUEST:
        raw = bytearray(encode_request(0x41, "J", b"123"))
    else:
        raw = bytearray(encode_response(0x41, "J", b"1\tO\n", OK_STATUS))
    n = len(raw)
    if edit == "LEN":
        raw[2] = 0x40
        return bytes(raw)
    if edit == "L-low":
        low = 1 if kind is FrameKind.REQUEST else 8
        short = b"\x01" + encode_nibbles(low) + raw[5 : 5 + low] + b"\x05" + b"0000\x03"
        return rebcc(bytearray(short))
    if edit == "L-high":
        raw[1:5] = encode_nibbles(4096 + (3 if kind is FrameKind.REQUEST else 10))
        return bytes(raw)
    if edit == "SEQ":
        raw[5] = 0x1F
    elif edit == "SEQ-high":
        raw[5] = 0x80
    elif edit == "CMD":
        raw[6] = ord("j")
    elif edit == "DATA":
        raw[8] = 0x1B
    elif edit == "DATA-7F":
        raw[8] = 0x7F
    elif edit == "04":
        raw[n - 13] = 0x41
    elif edit == "STATUS":
        raw[n - 10] = 0x7F
    elif edit == "05":
        raw[n - 6] = 0x41
    elif edit == "03":
        raw[n - 1] = 0x02
        return bytes(raw)
    elif edit == "BCC":
        raw[n - 2] ^= 1
        return bytes(raw)
    elif edit == "BCC-range":
        raw[n - 3] = 0x40
        return bytes(raw)
    return rebcc(raw)


CASES = [
    (FrameKind.REQUEST, "LEN", "LEN"),
    (FrameKind.REQUEST, "L-low", "L"),
    (FrameKind.REQUEST, "L-high", "L"),
    (FrameKind.REQUEST, "SEQ", "SEQ"),
    (FrameKind.REQUEST, "SEQ-high", "SEQ"),
    (FrameKind.REQUEST, "CMD", "CMD"),
    (FrameKind.REQUEST, "DATA", "DATA"),
    (FrameKind.REQUEST, "DATA-7F", "DATA"),
    (FrameKind.REQUEST, "05", "05"),
    (FrameKind.REQUEST, "BCC", "BCC"),
    (FrameKind.REQUEST, "BCC-range", "BCC"),
    (FrameKind.REQUEST, "03", "03"),
    (FrameKind.RESPONSE, "LEN", "LEN"),
    (FrameKind.RESPONSE, "L-low", "L"),
    (FrameKind.RESPONSE, "L-high", "L"),
    (FrameKind.RESPONSE, "SEQ", "SEQ"),
    (FrameKind.RESPONSE, "CMD", "CMD"),
    (FrameKind.RESPONSE, "DATA", "DATA"),
    (FrameKind.RESPONSE, "04", "04"),
    (FrameKind.RESPONSE, "STATUS", "STATUS"),
    (FrameKind.RESPONSE, "05", "05"),
    (FrameKind.RESPONSE, "BCC", "BCC"),
    (FrameKind.RESPONSE, "03", "03"),
]


@pytest.mark.parametrize(("kind", "edit", "rule"), CASES)
def test_each_layout_rule(kind: FrameKind, edit: str, rule: str) -> None:
    raw = broken(kind, edit)
    events = decode_all(kind, raw + (b"\x00" * 5))  # padding: a frame that says it is longer
    errs = errors_of(events)
    assert frames_of(events) == []
    assert errs, f"{edit}: no error for {raw.hex(' ')}"
    assert errs[0].rule == rule
    assert str(errs[0]).startswith(f"{rule}: {kind.value}")
    assert isinstance(errs[0], FrameError)


def test_rule_request_l_zero_and_response_l_two() -> None:
    # a response decoder must refuse a request-sized frame (L = 2 < 9)
    [err] = errors_of(decode_all(FrameKind.RESPONSE, WORKED))
    assert err.rule == "L" and "L=2 outside 9..4105" in str(err)


def test_early_separator_is_a_data_error() -> None:
    raw = bytearray(encode_request(0x41, "J", b"123"))
    raw[8] = 0x05
    [err] = errors_of(decode_all(FrameKind.REQUEST, rebcc(raw)))
    assert err.rule == "DATA" and "0x05" in str(err)


def test_short_frame_then_next_frame_found() -> None:
    """A frame cut short (LEN says longer) fails on the next frame's 01, which is still found."""
    good = encode_request(0x22, "K", b"7")
    cut = encode_request(0x21, "J", b"123")[:8]  # 01 LEN(L=5) SEQ CMD '1' and then silence
    events = decode_all(FrameKind.REQUEST, cut + good)
    assert errors_of(events)[0].rule == "DATA" and "0x01" in str(errors_of(events)[0])
    assert frames_of(events) == [Frame(0x22, "K", b"7")]


def test_discard_partial() -> None:
    decoder = FrameDecoder(FrameKind.REQUEST)
    assert decoder.feed(WORKED[:6]) == []
    assert decoder.pending == 6
    err = decoder.discard_partial()
    assert err is not None and err.rule == "partial"
    assert decoder.pending == 0
    assert decoder.discard_partial() is None
    assert decoder.feed(WORKED) == [Frame(0x20, "S", b"")]


# --- property tests ------------------------------------------------------------------------

seqs = st.integers(0x20, 0x7F)
cmds = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
data_bytes = st.binary(max_size=300).map(
    lambda b: bytes(x for x in b if x in (9, 10) or (0x20 <= x != 0x7F))
)
statuses = st.binary(min_size=6, max_size=6).map(lambda b: bytes(x | 0x80 for x in b))
kinds = st.sampled_from(list(FrameKind))


@st.composite
def frames(draw: st.DrawFn, kind: FrameKind | None = None) -> Frame:
    k = kind or draw(kinds)
    status = draw(statuses) if k is FrameKind.RESPONSE else None
    return Frame(draw(seqs), draw(cmds), draw(data_bytes), status)


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(stream[last:p])
        last = p
    pieces.append(stream[last:])
    return pieces


def feed_pieces(kind: FrameKind, pieces: list[bytes]) -> list[object]:
    decoder = FrameDecoder(kind)
    events: list[object] = []
    for piece in pieces:
        events += decoder.feed(piece)
        assert decoder.pending <= 4105 + 11
    return events


@PROPS
@given(kinds, st.binary(max_size=2000), st.lists(st.integers(0, 5000), max_size=30))
def test_any_bytes_any_split_only_events(kind: FrameKind, stream: bytes, cuts: list[int]) -> None:
    events = feed_pieces(kind, split(stream, cuts))
    for e in events:
        assert isinstance(e, (Frame, Control, FrameRuleError))
    # the split never changes the outcome
    assert [repr(e) for e in events] == [repr(e) for e in decode_all(kind, stream)]


@PROPS
@given(kinds, st.lists(st.sampled_from([b"\x01", b"\x03", b"\x04", b"\x05", b"0", b";", b"?",
                                        b"\x15", b"\x16", b" ", b"S", b"\x80", b"\xff"]),
                       max_size=400), st.lists(st.integers(0, 500), max_size=20))
def test_frame_like_noise_only_events(kind: FrameKind, parts: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(parts)
    events = feed_pieces(kind, split(stream, cuts))
    assert all(isinstance(e, (Frame, Control, FrameRuleError)) for e in events)
    assert [repr(e) for e in events] == [repr(e) for e in decode_all(kind, stream)]


@PROPS
@given(st.data(), kinds, st.lists(st.integers(0, 100000), max_size=40))
def test_encoded_frames_any_split_decode_identically(
    data: st.DataObject, kind: FrameKind, cuts: list[int]
) -> None:
    sent = data.draw(st.lists(frames(kind), min_size=1, max_size=6))
    stream = b"".join(f.encode() for f in sent)
    events = feed_pieces(kind, split(stream, cuts))
    assert events == sent


@PROPS
@given(st.data(), kinds)
def test_single_bit_flip_always_detected(data: st.DataObject, kind: FrameKind) -> None:
    frame = data.draw(frames(kind))
    raw = bytearray(frame.encode())
    pos = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    raw[pos] ^= 1 << bit
    events = decode_all(kind, bytes(raw))
    decoded = frames_of(events)
    if pos == 0:
        # the 01 itself is gone: the frame is never seen (the receiver times out)
        assert decoded == [] and errors_of(events) == []
        return
    assert errors_of(events), "a flipped bit went unnoticed"
    # A frame can only reappear if the flip made a new 01 and the rest happens to be a whole
    # valid frame from there: then it is exactly that tail, never the original frame.
    for f in decoded:
        assert raw[pos] == 0x01 and f.encode() == bytes(raw[pos:])
    assert frame not in decoded


@PROPS
@given(st.data(), kinds)
def test_double_flips_pass_only_when_the_sum_cannot_see(
    data: st.DataObject, kind: FrameKind
) -> None:
    """Two flips in SEQ..BCC can give a valid but different frame only when the change of the
    16-bit sum equals the change of the BCC value (e.g. +4 in one byte, -4 in another)."""
    frame = data.draw(frames(kind))
    orig = frame.encode()
    raw = bytearray(orig)
    n = len(raw)
    positions = data.draw(st.lists(st.integers(5, n - 2), min_size=2, max_size=2, unique=True))
    for p in positions:
        raw[p] ^= 1 << data.draw(st.integers(0, 7))
    events = decode_all(kind, bytes(raw))
    good = [f for f in frames_of(events) if f.encode() == bytes(raw)]
    enq = n - 6
    sum_delta = (sum(raw[5 : enq + 1]) - sum(orig[5 : enq + 1])) % 65536
    def nibval(b: bytes | bytearray) -> int:
        v = 0
        for x in b:
            v = (v << 4) | (x - 0x30)
        return v

    bcc_delta = (nibval(raw[enq + 1 : enq + 5]) - nibval(orig[enq + 1 : enq + 5])) % 65536
    if good:
        assert sum_delta == bcc_delta
    elif sum_delta != bcc_delta:
        assert errors_of(events)


def test_compensating_flips_are_invisible_to_the_sum() -> None:
    """The documented blind spot of a 16-bit sum: +1 in one DATA byte, -1 in another."""
    raw = bytearray(encode_request(0x20, "J", b"123"))
    raw[7] += 1  # '1' -> '2'
    raw[8] -= 1  # '2' -> '1'
    assert frames_of(decode_all(FrameKind.REQUEST, bytes(raw))) == [Frame(0x20, "J", b"213")]


@PROPS
@given(st.data(), kinds)
def test_valid_frames_in_garbage_all_found(data: st.DataObject, kind: FrameKind) -> None:
    sent = data.draw(st.lists(frames(kind), min_size=1, max_size=5))
    noise = st.binary(max_size=60) | st.lists(
        st.sampled_from([b"\x01", b"\x01000", b"\x0100;0 S", b"\x05", b"\x03", b"0", b"\xff"]),
        max_size=10).map(b"".join)
    stream = b""
    for f in sent:
        stream += data.draw(noise) + f.encode()
    stream += data.draw(noise)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    found = frames_of(feed_pieces(kind, split(stream, cuts)))
    it = iter(found)
    assert all(any(f == g for g in it) for f in sent), "an embedded frame was lost"


# --- status bytes, S data, record numbers, J data ------------------------------------------


def test_status_round_trip_and_bits() -> None:
    st_ = RegisterStatus(day_open=True, clock_not_set=True, refused=True, out_of_range=True,
                         journal_full=True)
    raw = st_.encode()
    assert raw == bytes([0x89, 0x89, 0x82, 0x80, 0x80, 0x80])
    assert RegisterStatus.decode(raw) == st_
    assert st_.refusal is RefusalReason.OUT_OF_RANGE
    assert RegisterStatus.decode(bytes([0x86, 0x83, 0x81, 0x80, 0x80, 0x80])) == RegisterStatus(
        records_waiting=True, close_waiting=True, refused=True, malformed=True,
        journal_nearly_full=True)
    unknown = RegisterStatus(refused=True, unknown_command=True)
    assert unknown.refusal is RefusalReason.UNKNOWN_COMMAND
    assert RegisterStatus().refusal is None
    with pytest.raises(FrameRuleError):
        RegisterStatus.decode(b"\x80" * 5)


INFO = StatusInfo(model="SIM-1", firmware="1.0", store_code="S001", terminal_no="01",
                  business_date=date(2024, 4, 1), last_record_no=120, committed_record_no=100,
                  clock=datetime(2024, 4, 1, 9, 30, 5))


def test_status_info_round_trip() -> None:
    raw = INFO.encode()
    assert raw == b"REGLINK/1\tSIM-1\t1.0\tS001\t01\t20240401\t120\t100\t20240401093005"
    assert parse_status_info(raw) == INFO
    closed = parse_status_info(raw.replace(b"20240401\t", b"-\t"))
    assert closed.business_date is None


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [(b"REGLINK/1", b"REGLINK/2", "protocol"), (b"\tS001", b"\tS0-1", "store_code"),
     (b"\t01\t", b"\t123456789\t", "terminal_no"), (b"20240401\t", b"20240431\t", "business_date"),
     (b"\t120\t", b"\t0120\t", "last_record_no"), (b"\t100\t", b"\t121\t", "above"),
     (b"093005", b"093065", "clock"), (b"\t1.0", b"", "fields")],
)
def test_status_info_rejects(old: bytes, new: bytes, words: str) -> None:
    with pytest.raises(FrameDataError, match=words):
        parse_status_info(INFO.encode().replace(old, new, 1))


def test_record_numbers() -> None:
    assert format_record_no(0) == b"0"
    assert format_record_no(10**15 - 1) == b"9" * 15
    with pytest.raises(ValueError):
        format_record_no(10**15)
    with pytest.raises(ValueError):
        format_record_no(-1)
    assert parse_record_no(b"0") == 0
    assert parse_record_no(b"42") == 42
    for bad in (b"", b"01", b"-1", b"+1", b"1" * 16, b"1 ", b"\xef\xbc\x91"):
        with pytest.raises(FrameDataError):
            parse_record_no(bad)


def test_split_journal_data() -> None:
    chunk = split_journal_data(5, b"5\tT\n6\tL\n7\tE\n")
    assert chunk.lines == (b"5\tT", b"6\tL", b"7\tE") and chunk.problem is None
    partial = split_journal_data(5, b"5\tT\n6\tL")
    assert partial.lines == (b"5\tT",) and "partial" in (partial.problem or "")
    empty = split_journal_data(9, b"")
    assert empty.lines == () and empty.problem is None


def test_place_records_uses_each_records_own_number() -> None:
    plain = place_records(4, [b"5\tT", b"6\tL", b"7\tE"])
    assert plain.records == ((5, b"5\tT"), (6, b"6\tL"), (7, b"7\tE"))
    assert (plain.gaps, plain.unnumbered, plain.late, plain.last) == ((), (), (), 7)
    # the register skipped 6, and 9-10: never stored one number too low
    gap = place_records(4, [b"5\tT", b"7\tL", b"8\tX", b"11\tE"])
    assert [n for n, _ in gap.records] == [5, 7, 8, 11]
    assert gap.gaps == ((6, 6), (9, 10)) and gap.missing == 3 and gap.last == 11
    # J 5 answered from 488 on (a gap right at the start of the answer)
    first = place_records(4, [b"488\tO"])
    assert first.gaps == ((5, 487),) and first.last == 488


def test_place_records_unreadable_number_takes_the_next_one() -> None:
    garbled = place_records(4, [b"x\tT", b"6\tL", b"06\tX", b"\tE"])
    assert [n for n, _ in garbled.records] == [5, 6, 7, 8]
    assert garbled.unnumbered == (5, 7, 8) and garbled.gaps == () and garbled.last == 8
    # after a gap, "next" is after the highest number so far
    after_gap = place_records(0, [b"1\tO", b"5\tT", b"?\tL"])
    assert [n for n, _ in after_gap.records] == [1, 5, 6]


def test_place_records_repeats_and_backwards_are_late() -> None:
    back = place_records(4, [b"5\tT", b"7\tL", b"6\tX", b"7\tL", b"3\tE", b"8\tP"])
    assert [n for n, _ in back.records] == [5, 7, 6, 7, 3, 8]
    assert back.late == (6, 7, 3) and back.gaps == ((6, 6),) and back.last == 8
    # a garbled record claims the next number: the readable one after it comes late
    claimed = place_records(4, [b"x\tT", b"5\tL"])
    assert [n for n, _ in claimed.records] == [5, 5] and claimed.late == (5,)
    only_old = place_records(9, [b"8\tT", b"9\tL"])
    assert only_old.late == (8, 9) and only_old.last == 9


def test_pack_records() -> None:
    recs = [b"a" * 2047, b"b" * 2047, b"c"]
    assert pack_records(recs) == 2  # 2048 + 2048 = 4096 exactly
    assert pack_records([b"x" * 4095]) == 1
    assert pack_records([b"x" * 4096]) == 0
    assert pack_records([]) == 0
