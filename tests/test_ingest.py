"""Stored records become checked days; listeners hear each day once per processing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from gatewayd.config import RegisterSettings
from gatewayd.ingest import RegisterIngest, rebuild_day
from gatewayd.protocol.days import analyze_journal
from gatewayd.protocol.records import BusinessDay
from gatewayd.sim.journal_gen import Reclose, generate_journal
from gatewayd.store.journal import JournalStore

REG = RegisterSettings(store_code="0001", terminal_no="01", port="loop://")
START = date(2025, 1, 10)


class Listener:
    def __init__(self) -> None:
        self.events: list[tuple[str, object, object]] = []

    def day_accepted(self, register: RegisterSettings, day: BusinessDay) -> None:
        self.events.append(("accepted", day.business_date, day.close.number))

    def day_held(self, register: RegisterSettings, business_date: date, reason: str) -> None:
        self.events.append(("held", business_date, reason))

    def reclose(self, register: RegisterSettings, business_date: date, close_no: int) -> None:
        self.events.append(("reclose", business_date, close_no))


def feed(ingest: RegisterIngest, lines: list[str], batch: int = 37) -> None:
    raw = [line.encode("cp932") for line in lines]
    start = ingest.last_stored_record()
    for i in range(start, len(raw), batch):
        ingest.store_records(list(enumerate(raw[i : i + batch], start=i + 1)))
        ingest.process()


def test_days_arrive_checked_and_once(tmp_path: Path) -> None:
    lines = generate_journal(7, 3, START, receipts_per_day=25, recloses=[Reclose(0, 2)])
    store = JournalStore.in_state_dir(tmp_path)
    listener = Listener()
    ingest = RegisterIngest(store, REG, listener)
    feed(ingest, lines)
    accepted = [e[1] for e in listener.events if e[0] == "accepted"]
    assert accepted == [START, date(2025, 1, 11), date(2025, 1, 12)]
    assert ("reclose", START, 2) in listener.events
    assert [d.status for d in store.days("0001-01")] == ["accepted"] * 3
    first = store.day("0001-01", START)
    assert first is not None and first.close_no == 2
    # totals saved equal the analysis of the whole file
    whole = analyze_journal([line.encode("cp932") for line in lines], after_record_no=0)
    assert first.gross == whole.day_closing(START).totals.gross  # type: ignore[union-attr]

    # a restart: nothing is told again
    listener2 = Listener()
    again = RegisterIngest(JournalStore.in_state_dir(tmp_path), REG, listener2)
    again.process()
    assert listener2.events == []


def test_open_day_and_rebuild(tmp_path: Path) -> None:
    lines = generate_journal(3, 2, START, receipts_per_day=10)
    store = JournalStore.in_state_dir(tmp_path)
    listener = Listener()
    ingest = RegisterIngest(store, REG, listener)
    second_open = next(i for i, line in enumerate(lines) if "\tO\t" in line and i > 0)
    feed(ingest, lines[: second_open + 5])
    assert ingest.open_day is not None
    assert ingest.open_day.business_date == date(2025, 1, 11)
    day = rebuild_day(store, "0001-01", START)
    assert day is not None and day.close.business_date == START
    whole = analyze_journal([line.encode("cp932") for line in lines], after_record_no=0)
    assert day == whole.day_closing(START).day  # type: ignore[union-attr]
    assert rebuild_day(store, "0001-01", date(2025, 1, 11)) is None


def test_broken_day_held_with_reason_and_next_day_goes(tmp_path: Path) -> None:
    lines = generate_journal(5, 2, START, receipts_per_day=10)
    # change one payment amount of day 1: check 2 (and check 3) must hold it
    index = next(i for i, line in enumerate(lines) if "\tP\t" in line)
    fields = lines[index].split("\t")
    fields[6] = str(int(fields[6]) + 1)
    fields[5] = str(int(fields[5]) + 1)
    lines[index] = "\t".join(fields)
    store = JournalStore.in_state_dir(tmp_path)
    listener = Listener()
    feed(RegisterIngest(store, REG, listener), lines)
    held = [e for e in listener.events if e[0] == "held"]
    assert len(held) == 1 and held[0][1] == START
    assert str(held[0][2]).startswith("check 2")
    assert [e[1] for e in listener.events if e[0] == "accepted"] == [date(2025, 1, 11)]
    row = store.day("0001-01", START)
    assert row is not None and row.status == "held" and row.reason == held[0][2]


def test_crash_before_save_tells_again(tmp_path: Path) -> None:
    """Listener first, save second: a crash in between repeats the news, never loses it."""
    lines = generate_journal(9, 1, START, receipts_per_day=5)
    store = JournalStore.in_state_dir(tmp_path)

    class Crashing(Listener):
        def day_accepted(self, register: RegisterSettings, day: BusinessDay) -> None:
            super().day_accepted(register, day)
            raise KeyboardInterrupt  # the process dies here

    crashing = Crashing()
    ingest = RegisterIngest(store, REG, crashing)
    ingest.store_records(list(enumerate((line.encode("cp932") for line in lines), start=1)))
    with pytest.raises(KeyboardInterrupt):
        ingest.process()
    assert store.days("0001-01") == []
    listener = Listener()
    RegisterIngest(JournalStore.in_state_dir(tmp_path), REG, listener).process()
    assert [e[:2] for e in listener.events] == [("accepted", START)]


def own(lines: list[str]) -> list[tuple[int, bytes]]:
    return [(int(line.split("\t", 1)[0]), line.encode("cp932")) for line in lines]


@pytest.mark.parametrize("restart", [False, True])
def test_record_kept_aside_holds_the_day_it_came_in(tmp_path: Path, restart: bool) -> None:
    lines = generate_journal(5, 3, START, receipts_per_day=6)
    opens = [i for i, line in enumerate(lines) if "\tO\t" in line]
    store = JournalStore.in_state_dir(tmp_path)
    listener = Listener()
    ingest = RegisterIngest(store, REG, listener)
    ingest.store_records(own(lines[: opens[1] + 4]))
    ingest.process()  # day 1 accepted, day 2 open
    late = lines[2].replace("\t", "\t\t", 1).encode("cp932")  # record 3 again, other bytes
    # the late record comes with the next records, before the main loop read them
    assert ingest.store_records([*own(lines[opens[1] + 4 : opens[1] + 8]), (3, late)]) == (
        opens[1] + 8)
    assert store.conflicts("0001-01") == [(3, late)]
    after = opens[1] + 8  # the highest number stored when it came
    if restart:  # before day 2 closed: the aside is taken in again, where it came
        listener = Listener()
        ingest = RegisterIngest(JournalStore.in_state_dir(tmp_path), REG, listener)
    else:
        ingest.process()
    ingest.store_records(own(lines[opens[1] + 8 :]))
    ingest.process()
    reason = f"check 1: record 3 comes after record {after}, numbers must grow by 1"
    held = [e for e in listener.events if e[0] == "held"]
    assert len(held) == 1 and held[0][1] == date(2025, 1, 11)
    assert str(held[0][2]).startswith(f"{reason} (records 3, {after})")
    assert "comes after" not in str(held[0][2])[len(reason):]  # taken in once
    assert [e[1] for e in listener.events if e[0] == "accepted"] == (
        [date(2025, 1, 12)] if restart else [START, date(2025, 1, 12)])
