"""Everything a held slip prints for staff is plain Japanese: no English, no `backticks`."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest

from gatewayd.config import load_settings
from gatewayd.daemon import Gateway
from gatewayd.drivers.slip import HELD_SLIP_FALLBACK, SlipContent, held_slip_texts, render_slip
from gatewayd.escpos_text import decode
from gatewayd.ingest import RegisterIngest
from gatewayd.protocol.records import BusinessDay
from gatewayd.sim.journal_gen import generate_journal
from gatewayd.web.model import DayStatus, DaySummary, HeldCause, HeldReason

# ASCII words staff do read on a slip: the product's name and nothing else
ALLOWED_ASCII = {"freee"}
DAY = date(2025, 1, 10)


def _staff_plain(text: str) -> list[str]:
    """What is not plain Japanese in ``text``: ASCII words (other than the allowed) and `."""
    bad = [w for w in re.findall(r"[A-Za-z_]+", text) if w not in ALLOWED_ASCII]
    return bad + (["`"] if "`" in text else [])


@pytest.mark.parametrize("cause", [*HeldCause, None])
def test_every_held_cause_has_plain_japanese_reason_and_action(cause: HeldCause | None
                                                               ) -> None:
    reason, action = held_slip_texts(cause.value if cause is not None else None)
    assert reason and action
    assert _staff_plain(reason + action) == []
    if cause is not None:
        assert (reason, action) != HELD_SLIP_FALLBACK  # each cause says its own step


class _Printer:
    def __init__(self) -> None:
        self.slips: list[SlipContent] = []

    def submit_slip(self, content: SlipContent) -> bool:
        self.slips.append(content)
        return True


class _Quiet:
    def day_accepted(self, register: object, day: BusinessDay) -> None: ...

    def day_held(self, register: object, business_date: date, reason: str) -> None: ...

    def reclose(self, register: object, business_date: date, close_no: int) -> None: ...


def _printed_slips(tmp_path: Path, freee_side: HeldReason) -> list[str]:
    """Day 1 accepted but held on the freee side with ``freee_side``; day 2 held by a check."""
    cfg = tmp_path / "gatewayd.toml"
    cfg.write_text('state_dir = "state"\n[[registers]]\nstore_code = "0001"\n'
                   'terminal_no = "01"\nstore_name = "渋谷店"\nport = "/dev/null"\n',
                   encoding="utf-8")
    settings = load_settings(cfg)
    reg = settings.registers[0]
    lines = generate_journal(3, 2, DAY, receipts_per_day=6)
    z = max(i for i, line in enumerate(lines) if "\tZ\t" in line)
    fields = lines[z].split("\t")
    fields[6] = str(int(fields[6]) + 5)  # day 2's Z total off: held by check 3
    lines[z] = "\t".join(fields)
    gateway = Gateway(settings, web=False)
    try:
        ingest = RegisterIngest(gateway.store, reg, _Quiet())  # type: ignore[arg-type]
        ingest.store_records(list(enumerate((line.encode("cp932") for line in lines), start=1)))
        ingest.process()
        assert gateway.store.day(reg.register_id, date(2025, 1, 11)).status == "held"  # type: ignore[union-attr]
        held = DaySummary(reg.register_id, DAY, DayStatus.HELD, 1000, None, held=freee_side)
        snapshot = SimpleNamespace(day=lambda r, d: held if d == DAY else None)
        gateway.sync = SimpleNamespace(snapshot=lambda: snapshot)  # type: ignore[assignment]
        printer = _Printer()
        gateway.printer = printer  # type: ignore[assignment]
        for day in (DAY, date(2025, 1, 11)):
            gateway.store.add_notice(reg.register_id, day, 1)
        gateway._print_due_slips()
    finally:
        gateway.store.close()
    assert len(printer.slips) == 2
    return [decode(render_slip(content)).text for content in printer.slips]


def _held_part(text: str) -> str:
    return text[text.index("理由:"):text.index("[CUT]")]


@pytest.mark.parametrize("cause", list(HeldCause))
def test_held_slips_print_no_english_and_no_backticks(tmp_path: Path, cause: HeldCause) -> None:
    side = HeldReason(cause, "freee link missing" if cause is HeldCause.LINK
                      else f"{cause.value}: technical detail", freee_message="issue_date は不正")
    texts = _printed_slips(tmp_path, side)
    for text in texts:
        part = _held_part(text)
        assert _staff_plain(part) == [], part
    joined = "".join(texts)
    assert "freee link missing" not in joined and "check 3" not in joined
    assert held_slip_texts(cause.value)[0] in "".join(_held_part(texts[0]).split())
    assert held_slip_texts("day_check")[0] in "".join(_held_part(texts[1]).split())
