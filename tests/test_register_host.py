"""The host state machine against the register simulator over real ptys with real pyserial."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from reglink_fixtures import MemorySink, assert_k_after_commit, encoded, fixture_journal

from gatewayd.drivers.register_host import HostConfig, RegisterHost
from gatewayd.drivers.transport import SerialTransport
from gatewayd.errors import LinkDown, RegisterRefused
from gatewayd.protocol.frames import RefusalReason, next_seq
from gatewayd.sim.register import LineFaults, RegisterSimulator


class Rig:
    """A simulator on a pty (symlinked in tmp_path) and a host for it."""

    def __init__(self, tmp_path: Path, journal: list[str], **sim_options: object) -> None:
        self.path = tmp_path / "register0"
        self.journal = journal
        self.sim = RegisterSimulator(journal, **sim_options)  # type: ignore[arg-type]
        self.link = self.sim.start_pty(self.path)
        self.sink = MemorySink()
        self.sleeps: list[float] = []
        self.host: RegisterHost | None = None

    def make_host(self, **config: object) -> RegisterHost:
        options: dict[str, object] = {"poll_interval": 0.05}
        options.update(config)
        cfg = HostConfig("reg0", str(self.path), **options)  # type: ignore[arg-type]

        def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)
            time.sleep(0.01)

        self.host = RegisterHost(cfg, self.sink, sleep=sleep, rng=random.Random(7),
                                 clock=lambda: datetime(2024, 4, 1, 9, 30, 15, 123))
        return self.host

    def connected_host(self, **config: object) -> RegisterHost:
        host = self.make_host(**config)
        host.open()
        return host

    def stored_journal(self) -> list[bytes]:
        return [self.sink.records[n] for n in sorted(self.sink.records)]

    def close(self) -> None:
        if self.host is not None:
            self.host.stop()
        self.sim.stop()


RigFactory = Callable[..., Rig]


@pytest.fixture
def rig_factory(tmp_path: Path) -> Iterator[RigFactory]:
    rigs: list[Rig] = []

    def make(journal: list[str] | None = None, **sim_options: object) -> Rig:
        rig = Rig(tmp_path, journal if journal is not None else fixture_journal(), **sim_options)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


def test_cycle_moves_whole_journal_and_k_follows_commit(rig_factory: RigFactory) -> None:
    journal = fixture_journal(days=4, receipts=60)  # ~1,200 records, ~40 KB: many J
    rig = rig_factory(journal)
    host = rig.make_host()
    host.start()
    assert rig.sink.wait_for(len(journal), 15)
    host.stop()
    assert rig.stored_journal() == encoded(journal)
    assert rig.sim.committed == len(journal)
    # every record stored once, every J asks from the last stored + 1
    assert set(rig.sink.store_counts.values()) == {1}
    j_starts = [int(e[1]) for e in rig.sim.events_named("J")]  # type: ignore[call-overload]
    assert j_starts == rig.sink.calls
    assert len(j_starts) > 5
    # K never precedes the sink's commit (register's log vs the sink's own log)
    assert assert_k_after_commit(rig.sim.events, rig.sink) == len(j_starts)
    names = [e[0] for _, e in rig.sim.events if e[0] in ("S", "J", "K")]
    assert names[0] == "S"
    for a, b in itertools.pairwise(names):
        if a == "J":
            assert b == "K"  # each J is committed before the next request
    state = host.snapshot()
    assert state.counters.records_stored == len(journal)
    assert state.counters.resends == 0 and state.counters.naks_sent == 0
    assert state.last_info is not None and state.last_info.store_code == "0001"
    assert state.counters.bytes_received > sum(len(r) + 1 for r in encoded(journal))


def test_new_seq_per_request_from_random_start(rig_factory: RigFactory) -> None:
    rig = rig_factory()
    host = rig.connected_host()
    host.poll_once()
    seqs = [f.seq for f in rig.sim.received]
    assert len(seqs) >= 3
    assert seqs[0] == random.Random(7).randint(0x20, 0x7F)
    for a, b in itertools.pairwise(seqs):
        assert b == next_seq(a)


def test_timeout_resends_same_frame(rig_factory: RigFactory) -> None:
    rig = rig_factory()
    host = rig.connected_host()
    rig.sim.inject(ignore_requests=2)
    start = time.monotonic()
    info = host.status()
    elapsed = time.monotonic() - start
    assert info.last_record_no == len(rig.journal)
    assert 0.9 <= elapsed < 2.0  # two 500 ms timeouts
    assert rig.sim.events_named("ignored") == [("ignored", "S"), ("ignored", "S")]
    assert host.counters.resends == 2 and host.counters.timeouts == 2
    assert host.counters.frames_sent == 3


def test_no_answer_after_four_sends_is_link_down(rig_factory: RigFactory) -> None:
    rig = rig_factory()
    host = rig.connected_host(response_timeout=0.1)
    rig.sim.inject(ignore_requests=4)
    with pytest.raises(LinkDown, match="after 4 sends"):
        host.status()
    assert host.counters.frames_sent == 4


def test_register_nak_makes_host_resend(rig_factory: RigFactory) -> None:
    rig = rig_factory()
    host = rig.connected_host()
    rig.sim.inject(corrupt_requests=1)
    info = host.status()
    assert info.last_record_no == len(rig.journal)
    assert host.counters.naks_received == 1 and host.counters.resends == 1
    assert rig.sim.events_named("NAK-sent") == [("NAK-sent", "injected damage")]
    assert len(rig.sim.events_named("S")) == 1


def test_real_bit_flip_in_request_is_naked(rig_factory: RigFactory) -> None:
    rig = rig_factory(faults=LineFaults(flip_rate=1.0), seed=3)
    host = rig.connected_host(response_timeout=0.2)
    with pytest.raises(LinkDown):
        host.status()  # every frame damaged both ways: never a valid answer
    assert host.counters.frames_sent == 4
    assert host.counters.naks_received + host.counters.timeouts + host.counters.naks_sent >= 4
    assert rig.sim.events_named("NAK-sent") or host.counters.naks_sent


def test_host_naks_bad_answer_and_register_resends(rig_factory: RigFactory) -> None:
    rig = rig_factory()
    host = rig.connected_host()
    rig.sim.inject(corrupt_responses=1)
    info = host.status()
    assert info.last_record_no == len(rig.journal)
    assert host.counters.naks_sent == 1 and host.counters.frame_errors == 1
    assert host.counters.resends == 0  # a NAK is not a send
    assert rig.sim.events_named("NAK-recv") == [("NAK-recv",)]


def test_truncated_answer_inter_byte_timeout_then_nak(rig_factory: RigFactory) -> None:
    rig = rig_factory()
    host = rig.connected_host()
    rig.sim.inject(truncate_responses=1)
    start = time.monotonic()
    info = host.status()
    assert 0.18 <= time.monotonic() - start < 1.0  # 200 ms gap, then NAK and the full answer
    assert info.last_record_no == len(rig.journal)
    assert host.counters.naks_sent == 1 and host.counters.resends == 0


def test_four_naks_are_a_timeout_and_the_retry_answered_unchanged(rig_factory: RigFactory) -> None:
    rig = rig_factory()
    host = rig.connected_host()
    rig.sim.inject(corrupt_responses=4)
    info = host.status()
    assert info.last_record_no == len(rig.journal)
    assert host.counters.naks_sent == 4
    assert host.counters.resends == 1  # after the fourth NAK the send counts as timed out
    # the register answers the 4th NAK too, and that answer may win the race with the
    # host's resend; either way the resend reaches the register as a retry, not run again
    deadline = time.monotonic() + 1
    while not rig.sim.events_named("retry") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rig.sim.events_named("retry")[0][1] == "S"
    assert len(rig.sim.events_named("S")) == 1


def test_syn_extends_the_wait(rig_factory: RigFactory) -> None:
    rig = rig_factory()
    host = rig.connected_host()
    rig.sim.faults.slow_delay = 1.2
    rig.sim.inject(slow_responses=1)
    start = time.monotonic()
    info = host.status()
    assert time.monotonic() - start >= 1.15
    assert info.last_record_no == len(rig.journal)
    assert host.counters.resends == 0 and host.counters.timeouts == 0
    assert host.counters.syns_received >= 10  # ~30 at one per 40 ms


def test_retried_k_is_answered_unchanged(rig_factory: RigFactory) -> None:
    rig = rig_factory()
    host = rig.connected_host()
    host.status()
    rig.sim.inject(lose_responses=1)  # K runs, its answer is lost
    host.commit(5)
    assert host.counters.resends == 1
    assert rig.sim.events_named("K") == [("K", 5)]
    [retry] = rig.sim.events_named("retry")
    assert retry[1] == "K"
    assert rig.sim.received[-1] == rig.sim.received[-2]  # same SEQ, CMD, DATA
    assert rig.sim.committed == 5


def test_refusals_are_typed(rig_factory: RigFactory) -> None:
    rig = rig_factory()
    host = rig.connected_host()
    with pytest.raises(RegisterRefused) as unknown:
        host.request("X")
    assert unknown.value.status[1] == 0x85
    with pytest.raises(RegisterRefused, match="malformed"):
        host.request("J", b"0")
    with pytest.raises(RegisterRefused, match="out of range"):
        host.commit(10_000)
    assert host.counters.refusals == 3
    host.commit(20)
    with pytest.raises(RegisterRefused) as freed:
        host.request("J", b"3")
    from gatewayd.protocol.frames import RegisterStatus

    assert RegisterStatus.decode(freed.value.status).refusal is RefusalReason.OUT_OF_RANGE


def test_port_error_is_link_down_at_once(rig_factory: RigFactory) -> None:
    rig = rig_factory()
    host = rig.connected_host()
    rig.sim.faults.slow_delay = 2.0
    rig.sim.inject(slow_responses=1)
    threading.Timer(0.2, rig.sim.unplug).start()
    start = time.monotonic()
    with pytest.raises(LinkDown, match="port failed"):
        host.status()
    assert time.monotonic() - start < 1.5  # not 4 x 500 ms + SYN waits


def test_link_down_reopens_with_backoff(rig_factory: RigFactory) -> None:
    rig = rig_factory()
    host = rig.make_host(response_timeout=0.05)
    rig.sim.unplug()  # the symlink is gone: opening fails
    host.start()
    deadline = time.monotonic() + 5
    while len(rig.sleeps) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rig.sleeps[:8] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert not host.snapshot().link_up
    assert "cannot open" in (host.snapshot().last_error or "")
    rig.sim.replug()
    assert rig.sink.wait_for(len(rig.journal), 5)
    assert host.snapshot().link_up
    # a silent register after a good reopen: backoff starts at 1 s again
    before = len(rig.sleeps)
    rig.sim.faults.silent = True
    deadline = time.monotonic() + 5
    while len(rig.sleeps) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rig.sleeps[before : before + 2] == [1, 2]
    assert host.counters.link_downs >= 2
    rig.sim.faults.silent = False
    host.stop()


def test_unplug_in_the_middle_stores_every_record_once(rig_factory: RigFactory) -> None:
    journal = fixture_journal(days=3, receipts=80)
    rig = rig_factory(journal)
    calls = {"n": 0}

    def after_store(last: int) -> None:
        calls["n"] += 1
        if calls["n"] in (2, 5):  # stored, but the cable goes before K
            rig.sim.unplug()
            threading.Timer(0.15, rig.sim.replug).start()

    rig.sink.after_store = after_store
    host = rig.make_host()
    host.start()
    assert rig.sink.wait_for(len(journal), 15)
    deadline = time.monotonic() + 5
    while rig.sim.committed < len(journal) and time.monotonic() < deadline:
        time.sleep(0.02)
    host.stop()
    assert rig.stored_journal() == encoded(journal)
    assert set(rig.sink.store_counts.values()) == {1}, "a record was stored twice"
    assert rig.sim.committed == len(journal)
    assert host.counters.link_downs >= 2
    assert assert_k_after_commit(rig.sim.events, rig.sink) >= len(rig.sink.calls)
    # the K for the batch stored just before the first unplug came only after the reopen:
    # S first, then K again (the register's committed_record_no was behind), no J between
    events = list(rig.sim.events)
    first_unplug = next(t for t, e in events if e[0] == "unplug")
    second_last = rig.sink.commits[1][1]
    k_time = next(t for t, e in events if e == ("K", second_last))
    between = [e[0] for t, e in events if first_unplug < t < k_time]
    assert "replug" in between and "S" in between and "J" not in between


def test_noisy_line_still_delivers_the_exact_journal(rig_factory: RigFactory) -> None:
    journal = fixture_journal(days=2, receipts=30)
    rig = rig_factory(journal, faults=LineFaults(flip_rate=0.2, drop_rate=0.0005), seed=11)
    host = rig.make_host(response_timeout=0.2)
    host.start()
    assert rig.sink.wait_for(len(journal), 20)
    host.stop()
    assert rig.stored_journal() == encoded(journal)
    assert set(rig.sink.store_counts.values()) == {1}
    c = host.counters
    assert c.frame_errors + c.naks_received + c.timeouts > 0, "the line was not noisy"
    assert assert_k_after_commit(rig.sim.events, rig.sink) >= 1


def test_periodic_unplug_during_paced_transfer(rig_factory: RigFactory) -> None:
    journal = fixture_journal(days=2, receipts=40)  # ~14 KB at 115200 baud: ~1.3 s of line
    rig = rig_factory(journal, line_rate=115200,
                      faults=LineFaults(unplug_every=0.4, unplug_for=0.1), seed=5)
    host = rig.make_host()
    host.start()
    assert rig.sink.wait_for(len(journal), 20)
    host.stop()
    assert rig.stored_journal() == encoded(journal)
    assert set(rig.sink.store_counts.values()) == {1}
    assert rig.sim.events_named("unplug")
    assert assert_k_after_commit(rig.sim.events, rig.sink) >= 1


def test_storage_error_means_no_k_then_resumes(rig_factory: RigFactory) -> None:
    rig = rig_factory()
    rig.sink.fail_next = 2
    host = rig.make_host()
    host.start()
    assert rig.sink.wait_for(len(rig.journal), 10)
    host.stop()
    assert rig.sink.calls[:3] == [1, 1, 1]  # asked again from the same record
    first_k = next(t for t, e in rig.sim.events if e[0] == "K")
    failed_js = [t for t, e in rig.sim.events if e[0] == "J"][:2]
    assert all(t < first_k for t in failed_js)
    assert host.counters.store_failures == 2
    state = host.snapshot()
    assert state.current_error is None and "disk full" in (state.last_error or "")
    assert rig.stored_journal() == encoded(rig.journal)
    assert assert_k_after_commit(rig.sim.events, rig.sink) >= 1


def test_storage_error_state_is_visible(rig_factory: RigFactory) -> None:
    rig = rig_factory()
    rig.sink.fail_next = 1
    host = rig.connected_host()
    host.poll_once()
    state = host.snapshot()
    assert "disk full" in (state.last_error or "")
    assert state.current_error == state.last_error
    assert rig.sim.events_named("K") == []
    assert rig.sim.committed == 0 and rig.sink.records == {}


def test_clock_set_when_register_says_not_set(rig_factory: RigFactory) -> None:
    rig = rig_factory(clock_set=False)
    host = rig.connected_host()
    host.poll_once()
    assert rig.sim.events_named("C") == [("C", "20240401093015")]
    assert rig.sim.clock_set
    names = [e[0] for _, e in rig.sim.events]
    assert names.index("C") == names.index("S") + 1
    host.poll_once()
    assert len(rig.sim.events_named("C")) == 1  # set once
    assert host.snapshot().last_status is not None
    assert not host.snapshot().last_status.clock_not_set  # type: ignore[union-attr]


def test_clock_left_alone_when_set(rig_factory: RigFactory) -> None:
    rig = rig_factory()
    host = rig.connected_host()
    host.poll_once()
    assert rig.sim.events_named("C") == []


def test_wrong_register_is_not_read(rig_factory: RigFactory) -> None:
    rig = rig_factory()
    host = rig.connected_host(expect_store_code="9999")
    with pytest.raises(Exception, match="store_code"):
        host.poll_once()
    assert rig.sim.events_named("J") == []


def test_records_appear_progressively(rig_factory: RigFactory) -> None:
    journal = fixture_journal(days=3, receipts=2)
    rig = rig_factory(journal, visible_days=1)
    host = rig.make_host()
    host.start()
    per_day = len(journal) // 3
    assert rig.sink.wait_for(per_day, 5)
    time.sleep(0.15)
    assert rig.sink.last_stored_record() == per_day
    rig.sim.reveal_next_day()
    assert rig.sink.wait_for(2 * per_day, 5)
    rig.sim.append(fixture_journal(days=1, receipts=1, start_no=len(journal) + 1), reveal=True)
    rig.sim.reveal_next_day()
    assert rig.sink.wait_for(len(journal) + 8, 5)
    host.stop()
    assert set(rig.sink.store_counts.values()) == {1}


def test_stop_ends_the_thread_quickly(rig_factory: RigFactory) -> None:
    rig = rig_factory()
    host = rig.make_host(poll_interval=5.0)
    thread = host.start()
    assert rig.sink.wait_for(len(rig.journal), 5)
    start = time.monotonic()
    host.stop()
    assert not thread.is_alive()
    assert time.monotonic() - start < 1.0


def test_reconnect_after_register_forgot_commit(rig_factory: RigFactory) -> None:
    """Host stored records but K never reached the register: after reopen it sends K again."""
    rig = rig_factory()
    for n in range(1, 11):
        rig.sink.records[n] = rig.journal[n - 1].encode("cp932")
        rig.sink.store_counts[n] = 1
    rig.sink.commits.append((time.monotonic(), 10))
    host = rig.connected_host()
    host.poll_once()
    k = [int(e[1]) for e in rig.sim.events_named("K")]  # type: ignore[call-overload]
    assert k[0] == 10
    assert rig.sink.calls[0] == 11
    assert set(rig.sink.store_counts.values()) == {1}
    assert isinstance(host._transport, SerialTransport)
