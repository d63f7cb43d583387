"""The plan invariants over the realistic journal generator's days (gatewayd.sim.journal_gen),
assembled and accepted by the day checks (gatewayd.protocol.days), for every granularity."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st
from mapping_fixtures import check_plan, mapping_settings

from gatewayd.protocol.days import analyze_journal
from gatewayd.protocol.records import BusinessDay
from gatewayd.settings_reader import TableReader
from gatewayd.sim.journal_gen import GeneratorOptions, generate_journal
from gatewayd.sync.mapping import allocate_receipt, plan_day
from gatewayd.sync.mapping_settings import MappingSettings, parse_mapping
from gatewayd.sync.plan import Granularity


def accepted_days(lines: list[str]) -> list[BusinessDay]:
    analysis = analyze_journal(lines)
    out = []
    for d in analysis.days:
        assert d.status == "accepted", d.reason
        assert d.day is not None
        out.append(d.day)
    return out


options_st = st.builds(
    GeneratorOptions,
    tax_mode=st.sampled_from(["IN", "OUT", "MIXED"]),
    void_rate=st.sampled_from([0.02, 0.2]),
    return_rate=st.sampled_from([0.015, 0.2]),
    training_rate=st.sampled_from([0.01, 0.1]),
    zero_total_rate=st.sampled_from([0.004, 0.05]),
)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    days=st.integers(1, 4),
    receipts=st.integers(0, 130),
    options=options_st,
    s=mapping_settings(),
)
def test_generated_days_plan_consistently(
    seed: int, days: int, receipts: int, options: GeneratorOptions, s: MappingSettings
) -> None:
    lines = generate_journal(
        seed, days, date(2025, 3, 1), receipts_per_day=receipts, options=options
    )
    for day in accepted_days(lines):
        check_plan(day, s, plan_day(day, "0001", "01", s))
        for tx in day.transactions:
            shares = allocate_receipt(tx)
            for i, pay in enumerate(tx.payments):
                if shares:
                    assert sum(x.gross for x in shares if x.payment_index == i) == pay.amount


def test_a_month_of_generated_days_in_every_granularity() -> None:
    lines = generate_journal(20250401, 30, date(2025, 4, 1), receipts_per_day=120)
    days = accepted_days(lines)
    assert len(days) == 30
    for g in Granularity:
        s = parse_mapping(TableReader({"granularity": g.value}, "mapping"))
        chunked = 0
        for day in days:
            p = plan_day(day, "0001", "01", s)
            check_plan(day, s, p)
            chunked += sum(1 for q in p.postings if q.ref_number.endswith("-2"))
        if g is Granularity.RECEIPT:
            assert chunked > 0  # 120 receipts a day: CASH needs a second deal
