"""Fuzzing the mapping: ``plan_day`` over generated days with arbitrary valid settings.

The mapping's own property tests check its rules with a few chosen settings; here the
settings are anything an installer can write that the loader accepts (any names, duplicate
names, every settlement, partner, due days, per-register overrides, movement rules of both
kinds, every granularity) and the days come from two generators (hand-built edge shapes:
zero totals, mixed-sign payments, refunds only; and realistic journals from journal_gen).
Allowed outcomes: a plan, or a typed ``GatewayError`` — never another exception, never a
hang. And the money adds up whatever the names: the sales postings sum to the Z, every
ref_number is unique and carries the store, terminal and date, and the plan survives its
JSON round trip (the outbox stores it as JSON).
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from fuzz_fixtures import FUZZ, FUZZ_SMALL, no_hang
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from mapping_fixtures import business_days

from gatewayd.config import RegisterSettings
from gatewayd.errors import ConfigError, GatewayError
from gatewayd.protocol.days import analyze_journal
from gatewayd.protocol.records import METHOD_ORDER, TAX_CLASS_ORDER, BusinessDay
from gatewayd.settings_reader import TableReader
from gatewayd.sim.journal_gen import GeneratorOptions, generate_journal
from gatewayd.sync.mapping import plan_day
from gatewayd.sync.mapping_settings import MappingSettings, parse_mapping
from gatewayd.sync.plan import DayPlan, Granularity, PostingKind

names = st.one_of(
    st.text(min_size=1, max_size=12).filter(lambda t: "\x00" not in t),
    st.sampled_from(["売上高", "現金", "普通預金", "対象外", "課税売上10%", "非課売上", "仮受金",
                     "【POS Regi】", "店舗{store_code}", "{store_code}{store_code}", "-", " "]),
)
codes = st.from_regex(r"\A[A-Za-z0-9]{1,8}\Z")


@st.composite
def mapping_tables(draw: st.DrawFn) -> dict[str, Any]:
    """A ``[mapping]`` table: every key optional, any names, every rule shape."""
    table: dict[str, Any] = {}
    optional: dict[str, Any] = {
        "granularity": st.sampled_from([g.value for g in Granularity]),
        "sales_account": names, "item_prefix": names, "store_name": names, "section": names,
        "tags": st.lists(names, max_size=3), "cash_walletable": names,
        "cash_over_account": names, "cash_short_account": names,
        "method_labels": st.dictionaries(st.sampled_from([m.value for m in METHOD_ORDER]),
                                         names, max_size=7),
        "tax_names": st.dictionaries(st.sampled_from([c.value for c in TAX_CLASS_ORDER]),
                                     names, max_size=4),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            table[key] = draw(strategy)
    methods: dict[str, Any] = {}
    for m in draw(st.lists(st.sampled_from([m.value for m in METHOD_ORDER]), unique=True)):
        rule: dict[str, Any] = {}
        if draw(st.booleans()):
            rule["settlement"] = draw(st.one_of(
                st.just("unsettled"), names.map(lambda n: f"walletable:{n}")))
        if draw(st.booleans()):
            rule["partner"] = draw(names)
        if draw(st.booleans()):
            rule["due_days"] = draw(st.integers(0, 3660))
        methods[m] = rule
    if methods:
        table["methods"] = methods

    def movement_rule(default_ok: bool) -> dict[str, Any]:
        shape = draw(st.sampled_from(["deal", "deal+tax", "transfer", "kind-deal",
                                      "kind-transfer"] + (["empty"] if default_ok else [])))
        if shape == "deal":
            return {"account": draw(names)}
        if shape == "deal+tax":
            return {"account": draw(names), "tax": draw(names)}
        if shape == "transfer":
            return {"walletable": draw(names)}
        if shape == "kind-deal":
            return {"kind": "deal", "account": draw(names), "tax": draw(names)}
        if shape == "kind-transfer":
            return {"kind": "transfer", "walletable": draw(names)}
        return {}

    reasons = draw(st.lists(st.sampled_from(["11", "21", "22", "R01", "R02", "R99"]) | names,
                            unique=True, max_size=4))
    if reasons:
        table["movements"] = {r: movement_rule(False) for r in reasons}
    defaults = {d: movement_rule(True) for d in draw(st.lists(st.sampled_from(["IN", "OUT"]),
                                                              unique=True))}
    if defaults:
        table["movement_defaults"] = defaults
    return table


@st.composite
def valid_settings(draw: st.DrawFn) -> tuple[MappingSettings, RegisterSettings]:
    table = draw(mapping_tables())
    try:
        mapping = parse_mapping(TableReader(table, "mapping"))
    except ConfigError:
        assume(False)  # the loader refuses it: not a setting an installer can run with
        raise
    register = RegisterSettings(
        store_code=draw(codes), terminal_no=draw(codes), port="loop://",
        store_name=draw(st.none() | names), section=draw(st.none() | names),
        tags=draw(st.none() | st.lists(names, max_size=2).map(tuple)),
    )
    return mapping.for_register(register), register


_GENERATED: dict[tuple[int, str], list[BusinessDay]] = {}


def generated_days(seed: int, mode: str) -> list[BusinessDay]:
    key = (seed, mode)
    if key not in _GENERATED:
        options = GeneratorOptions(tax_mode=mode, void_rate=0.1, return_rate=0.1,
                                   zero_total_rate=0.05, cash_difference_rate=0.5,
                                   movements=(0, 4))
        lines = generate_journal(seed, 2, date(2025, 6, 1), receipts_per_day=25,
                                 options=options)
        analysis = analyze_journal(lines, after_record_no=0)
        _GENERATED[key] = [d.day for d in analysis.days if d.day is not None]
    return _GENERATED[key]


realistic_days = st.builds(
    lambda seed, mode, index: generated_days(seed, mode)[index % 2],
    st.integers(0, 15), st.sampled_from(["IN", "OUT", "MIXED"]), st.integers(0, 1),
)


def plan_or_typed_error(day: BusinessDay, s: MappingSettings, reg: RegisterSettings) -> None:
    with no_hang():
        try:
            plan = plan_day(day, reg.store_code, reg.terminal_no, s)
        except GatewayError:
            return
    check_money(day, plan, reg)


def check_money(day: BusinessDay, plan: DayPlan, reg: RegisterSettings) -> None:
    prefix = f"POS-{reg.store_code}-{reg.terminal_no}-{day.business_date:%Y%m%d}-"
    refs = [p.ref_number for p in plan.postings]
    assert len(set(refs)) == len(refs), "two postings share a ref_number"
    assert all(r.startswith(prefix) for r in refs)
    sales = [p for p in plan.postings if p.ref_number[len(prefix):].split("-")[0] == "S"]
    # `day` folds the cash difference and 対象外 movements into S as item-less lines (§3.2)
    lines = [d for p in sales for d in p.details if d.item is not None]
    folded = [d for p in sales for d in p.details if d.item is None]
    assert sum(d.amount for d in lines) == day.close.gross_total
    assert sum(d.vat or 0 for d in lines) == plan.totals.tax
    movements = [p for p in plan.postings if p.ref_number[len(prefix):].startswith("M")]
    folded_moves = [abs(d.amount) for d in folded if not d.description.endswith(" 現金過不足")]
    assert sorted([p.amount for p in movements] + folded_moves) == sorted(
        m.amount for m in day.movements
    )
    for p in plan.postings:
        assert p.issue_date == day.business_date
        if p.kind is PostingKind.TRANSFER:
            assert p.transfer is not None and p.transfer.amount > 0
            assert p.transfer.from_walletable != p.transfer.to_walletable
    as_json = json.loads(json.dumps(plan.to_json(), ensure_ascii=False))
    assert DayPlan.from_json(as_json).to_json() == plan.to_json()


@settings(FUZZ, max_examples=200)
@given(business_days(), valid_settings())
def test_edge_days_with_any_valid_settings_plan_without_crash(
    day: BusinessDay, s: tuple[MappingSettings, RegisterSettings]
) -> None:
    plan_or_typed_error(day, *s)


@settings(FUZZ_SMALL, deadline=None)
@given(realistic_days, valid_settings())
def test_realistic_days_with_any_valid_settings_plan_without_crash(
    day: BusinessDay, s: tuple[MappingSettings, RegisterSettings]
) -> None:
    plan_or_typed_error(day, *s)


def test_realistic_days_are_accepted_days() -> None:
    """The realistic generator gives both days of each journal (else the fuzz is hollow)."""
    for mode in ("IN", "OUT", "MIXED"):
        assert len(generated_days(0, mode)) == 2
