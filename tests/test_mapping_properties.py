"""Property tests: over hundreds of generated days and every granularity, the plan adds up.

Per tax class and per method, the sales lines sum to the Z totals; vat sums to the day's tax;
settlement, chunking and ordering rules hold; the plan survives its JSON round trip.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mapping_fixtures import business_days, check_plan, mapping_settings

from gatewayd.protocol.records import BusinessDay
from gatewayd.settings_reader import TableReader
from gatewayd.sync.mapping import allocate_receipt, plan_day
from gatewayd.sync.mapping_settings import MappingSettings, parse_mapping
from gatewayd.sync.plan import Granularity


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(business_days(), mapping_settings())
def test_plans_add_up_to_the_z(day: BusinessDay, s: MappingSettings) -> None:
    p = plan_day(day, "0001", "01", s)
    check_plan(day, s, p)
    assert plan_day(day, "0001", "01", s) == p  # deterministic


@settings(max_examples=150, deadline=None)
@given(business_days(), st.sampled_from(list(Granularity)))
def test_every_granularity_on_the_same_day(day: BusinessDay, g: Granularity) -> None:
    s = parse_mapping(TableReader({"granularity": g.value}, "mapping"))
    check_plan(day, s, plan_day(day, "0001", "01", s))


@settings(max_examples=200, deadline=None)
@given(business_days())
def test_day_allocation_per_receipt(day: BusinessDay) -> None:
    for tx in day.transactions:
        shares = allocate_receipt(tx)
        assert tx.end is not None
        if tx.end.total == 0:
            assert shares == ()
            continue
        for i, pay in enumerate(tx.payments):
            assert sum(s.gross for s in shares if s.payment_index == i) == pay.amount
            assert all(s.method is pay.method for s in shares if s.payment_index == i)
        for x in tx.taxes:
            assert sum(s.gross for s in shares if s.tax_class is x.tax_class) == x.gross
            assert sum(s.tax for s in shares if s.tax_class is x.tax_class) == x.tax
