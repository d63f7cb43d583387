"""The tap's ESC/POS decoder: jobs at cuts and idle gaps, text lines, and fuzzing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gatewayd.tap.escpos import JobSplitter, job_lines, job_text, split_jobs

CUT = b"\x1dVB\x00"
KANJI = b"\x1c&\x1cC\x01"


def test_a_cut_ends_a_job_and_keeps_every_byte() -> None:
    stream = b"\x1b@one\n" + CUT + b"\x1b@two\n" + CUT + b"tail"
    jobs = split_jobs([(0.0, stream)])
    assert [j.data for j in jobs] == [b"\x1b@one\n" + CUT, b"\x1b@two\n" + CUT, b"tail"]
    assert [j.cut for j in jobs] == [True, True, False]
    assert b"".join(j.data for j in jobs) == stream


def test_a_cut_split_across_chunks_is_found_once_whole() -> None:
    splitter = JobSplitter(idle_gap=5)
    assert splitter.feed(0.0, b"abc\n\x1d") == []
    assert splitter.feed(0.1, b"V") == []
    jobs = splitter.feed(0.2, b"B\x00next")
    assert [j.data for j in jobs] == [b"abc\n\x1dVB\x00"]
    assert splitter.finish()[0].data == b"next"


def test_cut_bytes_inside_qr_or_image_data_do_not_split() -> None:
    payload = b"1P0" + CUT + b"\x1bi"
    qr = b"\x1d(k" + bytes([len(payload), 0]) + payload
    image = b"\x1dv0\x00\x01\x00\x04\x00" + b"\x1bi\x1dV"  # 1 x 4 bytes of raster
    stream = b"a\n" + qr + image + b"b\n" + CUT
    jobs = split_jobs([(0.0, stream)])
    assert len(jobs) == 1
    assert job_text(jobs[0].data) == "a\nb"


def test_an_idle_gap_ends_a_job_with_times_given_as_data() -> None:
    splitter = JobSplitter(idle_gap=2.0)
    assert splitter.feed(10.0, b"first\n") == []
    assert splitter.idle(11.9) == []
    jobs = splitter.idle(12.0)
    assert [(j.data, j.started, j.ended, j.cut) for j in jobs] == [(b"first\n", 10.0, 10.0, False)]
    assert splitter.feed(20.0, b"second") == []
    jobs = splitter.feed(23.0, b"third")  # the gap before this chunk ends the previous job
    assert [j.data for j in jobs] == [b"second"]
    assert splitter.finish()[0].data == b"third"


def test_kanji_yen_katakana_and_double_size() -> None:
    data = (
        b"\x1b@\x1bR\x08" + KANJI + b"\x1d!\x11" + "精算".encode("cp932") + b"\n\x1d!\x00"
        + "現金".encode("cp932") + b" \\1,234\n\x1c.\x1bt\x01" + "ｾｲｻﾝ".encode("cp932") + b"\n"
        + b"\x1b!\x30" + b"BIG\n\x1b!\x00small\n"
    )
    lines = job_lines(data)
    assert [(ln.text, ln.double) for ln in lines] == [
        ("精算", True),
        ("現金 ¥1,234", False),
        ("ｾｲｻﾝ", False),
        ("BIG", True),
        ("small", False),
    ]
    assert [ln.number for ln in lines] == [1, 2, 3, 4, 5]


def test_without_kanji_mode_bytes_are_single_unless_the_template_says_shift_jis() -> None:
    data = "純売上".encode("cp932") + b"\n"
    assert job_text(data) != "純売上"
    assert job_text(data, always_kanji=True) == "純売上"


def test_jis_code_system() -> None:
    jis = "合計".encode("iso2022_jp")[3:-3]  # the two-byte codes without escapes
    assert job_text(b"\x1c&\x1cC\x00" + jis + b"\n") == "合計"


def test_barcode_and_raster_data_are_never_text() -> None:
    barcode = b"\x1dk\x49\x05{B123"  # CODE128 with its length
    barcode_nul = b"\x1dk\x04ABC\x00"  # CODE39 ended by NUL
    raster = b"\x1b*\x00\x03\x00" + "合計".encode("cp932")[:3]
    data = KANJI + b"x" + barcode + barcode_nul + raster + b"y\n"
    assert job_text(data) == "xy"


def test_a_truncated_command_costs_its_prefix_only() -> None:
    # a barcode whose NUL never comes: what follows it is still read
    data = b"before\n\x1dk\x04ABC\nafter\n"
    assert job_text(data).splitlines()[0] == "before"
    assert "after" in job_text(data)


# --------------------------------------------------------------------------------------------
# fuzz

_COMMANDS = st.sampled_from([
    b"\x1b@", b"\x1bE\x01", b"\x1b!\x30", b"\x1b!\x00", b"\x1d!\x11", b"\x1d!\x00", b"\x1ba\x01",
    b"\x1bt\x01", b"\x1bR\x08", b"\x1c&", b"\x1c.", b"\x1cC\x01", b"\x10\x04\x01",
    b"\x1dk\x49\x03{B1", b"\x1dv0\x00\x01\x00\x02\x00\x1b\x1d", b"\x1d(k\x04\x001P0\xff",
    b"\x1bp\x00\x19\xfa", b"\x1b*\x00\x02\x00\x1c&",
])
_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="\\"),
    min_size=1, max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.floats(min_value=0, max_value=5))
def test_fuzz_any_bytes_never_crash_and_jobs_keep_every_byte(data: bytes, gap: float) -> None:
    half = len(data) // 2
    jobs = split_jobs([(0.0, data[:half]), (gap, data[half:])], idle_gap=1.0)
    assert b"".join(j.data for j in jobs) == data
    for job in jobs:
        job_lines(job.data)
        job_lines(job.data, always_kanji=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_TEXT, _COMMANDS), max_size=20))
def test_fuzz_text_between_any_commands_is_never_lost(parts: list[tuple[str, bytes]]) -> None:
    data = b"".join(text.encode("ascii") + cmd for text, cmd in parts)
    decoded = "".join(ln.text for ln in job_lines(data))
    want = "".join(text for text, _ in parts)
    assert decoded.replace(" ", "") == want.replace(" ", "")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="合計現金精算売上クレジット税込対象", min_size=1, max_size=6),
                max_size=10), st.lists(_COMMANDS, max_size=10))
def test_fuzz_kanji_text_survives_commands(words: list[str], cmds: list[bytes]) -> None:
    data = b"\x1c&\x1cC\x01"
    for i, word in enumerate(words):
        cmd = cmds[i] if i < len(cmds) else b""
        if cmd in (b"\x1b@", b"\x1c.", b"\x1b*\x00\x02\x00\x1c&"):
            cmd = b""  # these leave Kanji mode (by design the text would change)
        data += word.encode("cp932") + cmd
    assert "".join(ln.text for ln in job_lines(data)) == "".join(words)
