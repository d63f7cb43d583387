"""The register simulator, section 4 by section 4, through a real pty and pyserial."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from reglink_fixtures import encoded, fixture_journal

from gatewayd.drivers.transport import SerialTransport
from gatewayd.errors import PortError
from gatewayd.protocol.frames import (
    Control,
    Frame,
    FrameDecoder,
    FrameKind,
    RefusalReason,
    encode_request,
    parse_status_info,
    record_number_field,
    split_journal_data,
)
from gatewayd.sim.journal_gen import skip_number
from gatewayd.sim.register import (
    LineFaults,
    RegisterSimulator,
    read_journal_file,
    write_journal_file,
)


class Client:
    """A bare REGLINK/1 host for poking the simulator."""

    def __init__(self, path: str) -> None:
        self.t = SerialTransport(path, 115200)
        self.decoder = FrameDecoder(FrameKind.RESPONSE)

    def events(self, timeout: float, until: Callable[[list[object]], bool] | None = None,
               ) -> list[object]:
        out: list[object] = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            chunk = self.t.read(8192, max(0.0, min(0.05, end - time.monotonic())))
            if chunk:
                out += self.decoder.feed(chunk)
                if until is not None and until(out):
                    break
        return out

    def ask(self, seq: int, cmd: str, data: bytes = b"", timeout: float = 1.0) -> Frame:
        self.t.write(encode_request(seq, cmd, data))
        events = self.events(timeout, lambda ev: any(isinstance(e, Frame) for e in ev))
        frames = [e for e in events if isinstance(e, Frame)]
        assert frames, f"no answer to {cmd}: {events}"
        return frames[0]


Rig = tuple[RegisterSimulator, Client]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    sims: list[RegisterSimulator] = []

    def factory(journal: list[str] | None = None, **options: object) -> Rig:
        sim = RegisterSimulator(fixture_journal() if journal is None else journal,
                                **options)  # type: ignore[arg-type]
        link = sim.start_pty(tmp_path / f"reg{len(sims)}")
        sims.append(sim)
        return sim, Client(link.path)

    yield factory
    for sim in sims:
        sim.stop()


def test_status_of_an_empty_register(make: Callable[..., Rig]) -> None:
    _sim, c = make([], store_code="S9", terminal_no="T2")
    resp = c.ask(0x20, "S")
    info = parse_status_info(resp.data)
    assert (info.last_record_no, info.committed_record_no, info.business_date) == (0, 0, None)
    assert (info.store_code, info.terminal_no) == ("S9", "T2")
    st = resp.register_status
    assert not st.day_open and not st.records_waiting and not st.refused
    assert abs((info.clock - datetime.now()).total_seconds()) < 5


def test_business_date_follows_the_journal(make: Callable[..., Rig]) -> None:
    journal = fixture_journal(days=2, receipts=1)
    per_day = len(journal) // 2
    sim, c = make(journal, visible_days=1)
    info = parse_status_info(c.ask(0x20, "S").data)
    assert info.business_date is None and info.last_record_no == per_day  # day 1 closed
    sim.append(journal[per_day : per_day + 3], reveal=False)  # nothing written yet
    assert parse_status_info(c.ask(0x21, "S").data).last_record_no == per_day
    _, c2 = make(journal[: per_day + 2])  # O of day 2 written, not closed
    resp = c2.ask(0x20, "S")
    assert parse_status_info(resp.data).business_date == date(2024, 4, 2)
    assert resp.register_status.day_open and resp.register_status.close_waiting
    assert sim.reveal_next_day()  # day 2
    assert sim.reveal_next_day()  # the 3 records appended unrevealed
    assert not sim.reveal_next_day()


def test_j_packs_whole_records_up_to_4096_bytes(make: Callable[..., Rig]) -> None:
    journal = fixture_journal(days=3, receipts=30)
    sim, c = make(journal)
    resp = c.ask(0x20, "J", b"1")
    assert len(resp.data) <= 4096 and resp.data.endswith(b"\n")
    chunk = split_journal_data(1, resp.data)
    rec = encoded(journal)
    count = len(chunk.lines)
    assert list(chunk.lines) == rec[:count]
    assert len(resp.data) + len(rec[count]) + 1 > 4096  # the next one would not fit
    assert c.ask(0x21, "J", str(len(journal)).encode()).data == rec[-1] + b"\n"
    assert c.ask(0x22, "J", str(len(journal) + 1).encode()).data == b""
    assert sim.events_named("J") == [("J", 1), ("J", len(journal)), ("J", len(journal) + 1)]


@pytest.mark.parametrize(
    ("cmd", "data", "reason"),
    [("S", b"x", RefusalReason.MALFORMED), ("J", b"0", RefusalReason.MALFORMED),
     ("J", b"01", RefusalReason.MALFORMED), ("J", b"-1", RefusalReason.MALFORMED),
     ("J", b"1" * 16, RefusalReason.MALFORMED), ("K", b"", RefusalReason.MALFORMED),
     ("K", b"999", RefusalReason.OUT_OF_RANGE), ("C", b"20240231120000", RefusalReason.MALFORMED),
     ("Q", b"", RefusalReason.UNKNOWN_COMMAND)],
)
def test_refusals(make: Callable[..., Rig], cmd: str, data: bytes, reason: RefusalReason) -> None:
    sim, c = make()
    resp = c.ask(0x30, cmd, data)
    assert resp.seq == 0x30 and resp.cmd == cmd
    assert resp.data == b""  # a refused request has empty DATA
    assert resp.register_status.refused and resp.register_status.refusal is reason
    assert sim.committed == 0


def test_commit_rules_and_freeing(make: Callable[..., Rig]) -> None:
    sim, c = make()
    assert c.ask(0x20, "K", b"0").data == b"0" and sim.committed == 0  # K 0 changes nothing
    resp = c.ask(0x21, "K", b"10")
    assert resp.data == b"10" and sim.committed == 10
    assert resp.register_status.records_waiting
    assert c.ask(0x22, "K", b"5").data == b"5" and sim.committed == 10  # at/below: no change
    freed = c.ask(0x23, "J", b"10")
    assert freed.register_status.refusal is RefusalReason.OUT_OF_RANGE
    assert split_journal_data(11, c.ask(0x24, "J", b"11").data).lines[0].startswith(b"11\t")
    last = sim.last_record_no
    done = c.ask(0x25, "K", str(last).encode())
    assert not done.register_status.records_waiting and not done.register_status.close_waiting


def test_uncommitted_records_are_never_freed(make: Callable[..., Rig]) -> None:
    sim, c = make()
    for seq, n in enumerate((1, 2, 1), start=0x20):
        assert c.ask(seq, "J", str(n).encode()).data.startswith(f"{n}\t".encode())
    assert sim.committed == 0


def test_keep_committed_still_serves_them(make: Callable[..., Rig]) -> None:
    _sim, c = make(keep_committed=True)
    c.ask(0x20, "K", b"10")
    assert c.ask(0x21, "J", b"3").data.startswith(b"3\t")


def test_capacity_full_and_nearly_full(make: Callable[..., Rig]) -> None:
    journal = fixture_journal(days=1, receipts=4)  # 23 records
    sim, c = make(journal, capacity=10)
    resp = c.ask(0x20, "S")
    info = parse_status_info(resp.data)
    assert info.last_record_no == 10 and sim.hidden == len(journal) - 10
    assert resp.register_status.journal_full and resp.register_status.journal_nearly_full
    # a commit frees room: the waiting sales are written at once, the memory is full again
    assert c.ask(0x21, "K", b"1").register_status.journal_full
    assert parse_status_info(c.ask(0x22, "S").data).last_record_no == 11
    done = c.ask(0x23, "K", b"11").register_status
    assert parse_status_info(c.ask(0x24, "S").data).last_record_no == 21
    assert done.journal_full
    free = c.ask(0x25, "K", b"21").register_status
    assert not free.journal_full and not free.journal_nearly_full
    assert sim.last_record_no == 23 and sim.hidden == 0
    _, c2 = make(journal[:9], capacity=10)
    nearly = c2.ask(0x20, "S").register_status
    assert nearly.journal_nearly_full and not nearly.journal_full


def test_clock_set(make: Callable[..., Rig]) -> None:
    _sim, c = make(clock_set=False)
    resp = c.ask(0x20, "S")
    assert resp.register_status.clock_not_set
    assert parse_status_info(resp.data).clock.year == 2000
    assert c.ask(0x21, "C", b"20300102030405").data == b"20300102030405"
    resp = c.ask(0x22, "S")
    assert not resp.register_status.clock_not_set
    clock = parse_status_info(resp.data).clock
    assert datetime(2030, 1, 2, 3, 4, 5) <= clock <= datetime(2030, 1, 2, 3, 4, 8)


def test_retry_answers_previous_response_unchanged(make: Callable[..., Rig]) -> None:
    sim, c = make()
    first = c.ask(0x42, "J", b"7")
    assert c.ask(0x42, "J", b"7") == first
    assert sim.events_named("J") == [("J", 7)]
    assert c.ask(0x43, "K", b"3") == c.ask(0x43, "K", b"3")
    assert sim.events_named("K") == [("K", 3)]  # a retried K is not run again
    c.ask(0x44, "K", b"3")  # a new SEQ is a new request
    assert sim.events_named("K") == [("K", 3), ("K", 3)]
    assert [e[1] for e in sim.events_named("retry")] == ["J", "K"]
    c.ask(0x44, "K", b"4")  # same SEQ, other DATA: not a retry
    assert sim.committed == 4


def test_retry_of_a_changed_answer_is_still_the_old_answer(make: Callable[..., Rig]) -> None:
    sim, c = make(fixture_journal(days=1, receipts=1))
    before = c.ask(0x50, "S")
    sim.append(["9\tM\t1\tIN\tR1\t釣銭\t1000\t20240401120000\tS1"])
    retried = c.ask(0x50, "S")
    assert retried == before  # SEQ, CMD and DATA repeat: the previous response, unchanged
    fresh = c.ask(0x51, "S")
    assert parse_status_info(fresh.data).last_record_no == 9


def test_retry_is_forgotten_after_three_seconds(make: Callable[..., Rig]) -> None:
    sim, c = make()
    sim.retry_memory = 0.3  # the 3 s of the spec, shortened for the test
    c.ask(0x60, "K", b"2")
    time.sleep(0.4)
    c.ask(0x60, "K", b"2")
    assert sim.events_named("K") == [("K", 2), ("K", 2)]
    assert sim.events_named("retry") == []
    assert RegisterSimulator().retry_memory == 3.0


def test_request_while_busy_is_ignored_and_syn_every_60ms(make: Callable[..., Rig]) -> None:
    sim, c = make()
    sim.faults.slow_delay = 0.5
    sim.inject(slow_responses=1)
    c.t.write(encode_request(0x20, "S"))
    time.sleep(0.15)
    c.t.write(encode_request(0x21, "K", b"5"))  # arrives while busy: ignored
    stamps: list[float] = []
    events: list[object] = []
    end = time.monotonic() + 1.0
    while time.monotonic() < end and not any(isinstance(e, Frame) for e in events):
        chunk = c.t.read(1, 0.1)
        for e in c.decoder.feed(chunk):
            events.append(e)
            if e is Control.SYN:
                stamps.append(time.monotonic())
    frames = [e for e in events if isinstance(e, Frame)]
    assert [f.cmd for f in frames] == ["S"]
    assert len(stamps) >= 8  # the host saw the SYNs
    sent = [t for t, e in sim.events if e == ("SYN",)]
    assert len(sent) >= 0.5 / 0.06
    assert max(b - a for a, b in itertools.pairwise(sent)) < 0.06  # as the register sent them
    assert c.events(0.3) == []  # the K never gets an answer
    assert sim.committed == 0 and sim.events_named("ignored-busy")


def test_partial_frame_then_silence_gets_nak(make: Callable[..., Rig]) -> None:
    sim, c = make()
    c.t.write(encode_request(0x20, "S")[:5])
    start = time.monotonic()
    events = c.events(1.0, lambda ev: bool(ev))
    assert events == [Control.NAK]
    assert 0.18 <= time.monotonic() - start < 0.6
    assert sim.events_named("NAK-sent")[0][1].startswith("partial")  # type: ignore[union-attr]


def test_bad_frame_gets_nak_and_is_not_accepted(make: Callable[..., Rig]) -> None:
    sim, c = make()
    raw = bytearray(encode_request(0x20, "K", b"4"))
    raw[7] ^= 0x02  # '4' -> '6': the BCC no longer matches
    c.t.write(bytes(raw))
    assert c.events(0.5, lambda ev: bool(ev)) == [Control.NAK]
    assert sim.committed == 0
    # a NAK is not acceptance: the same SEQ afterwards runs as a new request
    assert c.ask(0x20, "K", b"4").data == b"4" and sim.committed == 4
    assert sim.events_named("retry") == []


def test_nak_resends_last_answer(make: Callable[..., Rig]) -> None:
    sim, c = make()
    first = c.ask(0x20, "S")
    c.t.write(b"\x15")
    again = c.events(0.5, lambda ev: bool(ev))
    assert again == [first]
    assert sim.events_named("NAK-recv") == [("NAK-recv",)]
    assert len(sim.events_named("S")) == 1


def test_valid_frame_in_garbage_is_answered(make: Callable[..., Rig]) -> None:
    _sim, c = make()
    c.t.write(b"\x00\xff\x01\x30garbage" + encode_request(0x33, "S"))
    events = c.events(1.0, lambda ev: any(isinstance(e, Frame) for e in ev))
    assert Control.NAK in events  # for the broken start
    assert [e.seq for e in events if isinstance(e, Frame)] == [0x33]


def test_day_interval_reveals_days(make: Callable[..., Rig]) -> None:
    journal = fixture_journal(days=3, receipts=1)
    per_day = len(journal) // 3
    sim, c = make(journal, visible_days=1, day_interval=0.2)
    assert parse_status_info(c.ask(0x20, "S").data).last_record_no == per_day
    time.sleep(0.5)
    assert parse_status_info(c.ask(0x21, "S").data).last_record_no == 3 * per_day
    assert [e[1] for e in sim.events_named("reveal")] == [per_day, 2 * per_day, 3 * per_day]


def test_journal_starting_after_freed_records(make: Callable[..., Rig]) -> None:
    _sim, c = make(fixture_journal(days=1, receipts=1, start_no=500))
    info = parse_status_info(c.ask(0x20, "S").data)
    assert (info.committed_record_no, info.last_record_no) == (499, 507)
    assert c.ask(0x21, "J", b"499").register_status.refusal is RefusalReason.OUT_OF_RANGE
    assert c.ask(0x22, "J", b"500").data.startswith(b"500\t")


def test_gap_in_journal_is_served_under_own_numbers(make: Callable[..., Rig]) -> None:
    journal = skip_number(fixture_journal(days=1, receipts=1), 3)  # no record 4: 3, then 5
    sim, c = make(journal)
    info = parse_status_info(c.ask(0x20, "S").data)
    assert info.last_record_no == len(journal) + 1  # the register's last record is its own
    lines = split_journal_data(1, c.ask(0x21, "J", b"1").data).lines
    assert [record_number_field(x) for x in lines] == [1, 2, 3, *range(5, len(journal) + 2)]
    # J for the missing number serves from the next record that exists
    assert c.ask(0x22, "J", b"4").data.startswith(b"5\t")
    assert c.ask(0x23, "K", b"3").register_status.records_waiting
    assert sim.uncommitted == len(journal) - 3
    assert c.ask(0x24, "K", str(len(journal) + 1).encode()).data == str(len(journal) + 1).encode()
    assert sim.committed == sim.last_record_no and sim.uncommitted == 0
    assert not sim.register_status().records_waiting
    assert sim.written_records() == [(record_number_field(x), x) for x in encoded(journal)]


def test_swapped_records_are_served_in_journal_order(make: Callable[..., Rig]) -> None:
    journal = fixture_journal(days=1, receipts=1)
    journal[3], journal[4] = journal[4], journal[3]  # 5 is written before 4
    _sim, c = make(journal)
    lines = split_journal_data(4, c.ask(0x20, "J", b"4").data).lines
    assert [record_number_field(x) for x in lines[:3]] == [5, 4, 6]
    assert c.ask(0x21, "J", b"6").data.startswith(b"6\t")


def test_unplug_removes_link_and_replug_restores_it(make: Callable[..., Rig],
                                                     tmp_path: Path) -> None:
    sim, c = make()
    link = tmp_path / "reg0"
    sim.unplug()
    assert not link.exists()
    with pytest.raises(PortError):
        c.t.read(10, 0.2)
    sim.replug()
    assert link.is_symlink() and Path(os.readlink(link)).exists()  # a fresh pty behind it
    c2 = Client(str(link))
    assert c2.ask(0x20, "S").cmd == "S"
    assert [e[0] for _, e in sim.events][-3:-1] == ["unplug", "replug"]


def test_lines_the_link_cannot_carry_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot be sent"):
        RegisterSimulator(["1\tT\tbad\x07bell"])
    with pytest.raises(ValueError, match="cannot be sent"):
        RegisterSimulator(["1\tT\t" + "x" * 4096])


def test_journal_file_round_trip(tmp_path: Path) -> None:
    journal = fixture_journal()
    write_journal_file(tmp_path / "j.txt", journal)
    assert (tmp_path / "j.txt").read_bytes().endswith(b"\n")
    assert read_journal_file(tmp_path / "j.txt") == journal


def test_faults_are_seeded() -> None:
    a = RegisterSimulator(faults=LineFaults(flip_rate=1.0), seed=4)
    b = RegisterSimulator(faults=LineFaults(flip_rate=1.0), seed=4)
    assert a._flip(b"\x01abcdef", keep_first=True) == b._flip(b"\x01abcdef", keep_first=True)
    assert a._flip(b"\x01abcdef", keep_first=True)[0] == 1


def test_cli_serves_a_generated_journal(tmp_path: Path) -> None:
    link = tmp_path / "cli-reg"
    out_file = tmp_path / "written.jrn"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatewayd", "sim", "register", "--link", str(link),
         "--seed", "5", "--days", "2", "--receipts", "3", "--store", "S7", "--terminal", "9",
         "--write-journal", str(out_file), "--duration", "20"],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("slave /dev/")
        assert proc.stdout.readline().strip() == f"link {link}"
        written = read_journal_file(out_file)
        c = Client(str(link))
        info = parse_status_info(c.ask(0x20, "S").data)
        assert (info.store_code, info.terminal_no) == ("S7", "9")
        assert info.last_record_no == len(written) > 10
        assert c.ask(0x21, "J", b"1").data.startswith(written[0].encode("cp932") + b"\n")
        c.t.close()
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0
    assert not link.exists()


def test_cli_replays_a_journal_file(tmp_path: Path) -> None:
    write_journal_file(tmp_path / "in.jrn", fixture_journal(days=1, receipts=1))
    link = tmp_path / "cli-reg2"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatewayd", "sim", "register", "--link", str(link),
         "--journal", str(tmp_path / "in.jrn"), "--duration", "20", "--clock-unset"],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        proc.stdout.readline()
        c = Client(str(link))
        resp = c.ask(0x20, "S")
        assert resp.register_status.clock_not_set
        assert parse_status_info(resp.data).last_record_no == 8
        c.t.close()
    finally:
        proc.terminate()
        proc.wait(10)
