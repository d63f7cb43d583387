"""The [mapping] table (freee-mapping.md §2): defaults, the spec's example, clear errors."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from gatewayd.config import RegisterSettings, parse_settings
from gatewayd.errors import ConfigError
from gatewayd.protocol.records import Direction, Method, TaxClass
from gatewayd.settings_reader import TableReader
from gatewayd.sync.mapping_settings import (
    MappingSettings,
    MethodRule,
    MovementRule,
    mapping_from_settings,
    parse_mapping,
)
from gatewayd.sync.plan import Granularity, PostingKind

SPEC_EXAMPLE = """
[mapping]
granularity = "summary"            # summary | receipt | day
sales_account = "売上高"
item_prefix = "【POS Regi】"
store_name = "店舗{store_code}"
section = "渋谷店"                 # 部門; omit for none
tags = ["POS"]                     # メモタグ
cash_walletable = "現金"
cash_over_account = "雑収入"
cash_short_account = "雑損失"

[mapping.method_labels]            # any of CASH CREDIT EMONEY QR GIFT POINT OTHER
QR = "QR決済"

[mapping.tax_names]                # any of "10" "8R" "0" "EX"
"0" = "非課売上"

[mapping.methods.CREDIT]           # per method: settlement, partner, due_days
settlement = "unsettled"           # unsettled | "walletable:<口座名>"
partner = "カード会社"
due_days = 30

[mapping.movements.R01]            # per reason_code
kind = "deal"                      # deal: account + tax
account = "消耗品費"
tax = "課対仕入10%"

[mapping.movements.R02]
kind = "transfer"                  # transfer: walletable
walletable = "普通預金"

[mapping.movement_defaults.IN]     # when no reason_code rule matches
account = "仮受金"
tax = "対象外"

[mapping.movement_defaults.OUT]
account = "仮払金"
tax = "対象外"
"""


def parse(table: dict[str, Any]) -> MappingSettings:
    return parse_mapping(TableReader(table, "mapping"))


def test_defaults_of_section_2() -> None:
    s = parse({})
    assert s == MappingSettings()
    assert s.granularity is Granularity.SUMMARY
    assert (s.sales_account, s.item_prefix, s.cash_walletable) == ("売上高", "【POS Regi】", "現金")
    assert (s.cash_over_account, s.cash_short_account) == ("雑収入", "雑損失")
    assert s.section is None and s.tags == ()
    assert s.store_label("0042") == "店舗0042"
    assert [s.method_labels[m] for m in Method] == [
        "現金",
        "クレジット",
        "電子マネー",
        "QRコード決済",
        "商品券",
        "ポイント",
        "その他",
    ]
    assert [s.tax_names[c] for c in TaxClass] == [
        "課税売上10%",
        "課税売上8%（軽）",
        "非課売上",
        "対象外",
    ]
    assert s.method_rule(Method.CASH) == MethodRule(walletable="現金")
    assert all(s.method_rule(m) == MethodRule() for m in Method if m is not Method.CASH)
    assert s.movement_rule("ANY", Direction.IN) == MovementRule.deal("仮受金", "対象外")
    assert s.movement_rule("ANY", Direction.OUT) == MovementRule.deal("仮払金", "対象外")


def test_spec_example_parses() -> None:
    data = tomllib.loads(SPEC_EXAMPLE)
    s = parse(data["mapping"])
    assert s.section == "渋谷店" and s.tags == ("POS",)
    assert s.method_labels[Method.QR] == "QR決済" and s.method_labels[Method.CASH] == "現金"
    assert s.tax_names[TaxClass.EXEMPT] == "非課売上"
    assert s.method_rule(Method.CREDIT) == MethodRule(None, "カード会社", 30)
    assert s.method_rule(Method.CASH).walletable == "現金"
    assert s.movement_rule("R01", Direction.OUT) == MovementRule.deal("消耗品費", "課対仕入10%")
    assert s.movement_rule("R02", Direction.IN) == MovementRule.transfer("普通預金")
    assert s.movement_rule("R03", Direction.IN) == MovementRule.deal("仮受金", "対象外")


def test_cash_walletable_setting_moves_cash_settlement() -> None:
    s = parse({"cash_walletable": "レジ現金", "methods": {"CASH": {"partner": "店"}}})
    assert s.method_rule(Method.CASH) == MethodRule("レジ現金", "店", None)
    s2 = parse({"methods": {"CASH": {"settlement": "unsettled"}}})
    assert not s2.method_rule(Method.CASH).settled


def test_kind_follows_from_keys_and_tax_defaults_to_ex_name() -> None:
    s = parse(
        {
            "tax_names": {"EX": "不課税"},
            "movements": {"A": {"account": "雑費"}, "B": {"walletable": "金庫"}},
            "movement_defaults": {"OUT": {"tax": "対象外"}},
        }
    )
    assert s.movements["A"] == MovementRule.deal("雑費", "不課税")
    assert s.movements["B"].kind is PostingKind.TRANSFER
    assert s.movement_defaults[Direction.OUT] == MovementRule.deal("仮払金", "対象外")
    assert s.movement_defaults[Direction.IN] == MovementRule.deal("仮受金", "不課税")


def test_for_register_applies_overrides() -> None:
    s = parse({"section": "本部", "tags": ["POS"], "store_name": "店{store_code}"})
    reg = RegisterSettings("0007", "01", "/dev/ttyUSB0")
    assert s.for_register(reg) == s
    r2 = RegisterSettings(
        "0007", "02", "/dev/ttyUSB1", store_name="渋谷", section="渋谷店", tags=()
    )
    o = s.for_register(r2)
    assert (o.store_label("0007"), o.section, o.tags) == ("渋谷", "渋谷店", ())
    assert o.granularity is s.granularity


def test_mapping_from_gateway_settings() -> None:
    data = tomllib.loads(
        SPEC_EXAMPLE
        + '\n[[registers]]\nstore_code = "0001"\nterminal_no = "01"\nport = "/dev/ttyUSB0"\n'
    )
    settings = parse_settings(data)
    assert mapping_from_settings(settings).section == "渋谷店"


def test_names_used_lists_every_master() -> None:
    s = parse(tomllib.loads(SPEC_EXAMPLE)["mapping"])
    used = s.names_used()
    assert {"売上高", "雑収入", "雑損失", "消耗品費", "仮受金", "仮払金"} <= used["account_items"]
    assert used["walletables"] == {"現金", "普通預金"}
    assert used["partners"] == {"カード会社"}
    assert "【POS Regi】QR決済" in used["items"]
    assert "課対仕入10%" in used["taxes"]


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ({"granularity": "weekly"}, "mapping.granularity", "summary, receipt, day"),
        ({"colour": 1}, "mapping.colour", "unknown key"),
        ({"method_labels": {"VISA": "x"}}, "mapping.method_labels.VISA", "unknown payment method"),
        ({"methods": {"cash": {}}}, "mapping.methods.cash", "CASH, CREDIT"),
        ({"tax_names": {"8": "x"}}, "mapping.tax_names.8", "unknown tax class"),
        (
            {"methods": {"CREDIT": {"settlement": "bank"}}},
            "mapping.methods.CREDIT.settlement",
            "walletable:<口座名>",
        ),
        (
            {"methods": {"CREDIT": {"settlement": "walletable:"}}},
            "mapping.methods.CREDIT.settlement",
            "wrong settlement",
        ),
        ({"methods": {"QR": {"due_days": -1}}}, "mapping.methods.QR.due_days", "≥ 0"),
        ({"methods": {"QR": {"due_days": "30"}}}, "mapping.methods.QR.due_days", "integer"),
        ({"methods": {"QR": {"fee": 1}}}, "mapping.methods.QR.fee", "unknown key"),
        (
            {"movements": {"R1": {"kind": "deal", "walletable": "普通預金", "account": "x"}}},
            "mapping.movements.R1.walletable",
            "no walletable",
        ),
        (
            {"movements": {"R1": {"kind": "transfer", "walletable": "普通預金", "tax": "x"}}},
            "mapping.movements.R1.tax",
            "no tax",
        ),
        (
            {"movements": {"R1": {"account": "雑費", "walletable": "普通預金"}}},
            "mapping.movements.R1.walletable",
            "either account",
        ),
        ({"movements": {"R1": {}}}, "mapping.movements.R1", "empty movement rule"),
        ({"movements": {"R1": {"kind": "deal"}}}, "mapping.movements.R1.account", "missing"),
        ({"movements": {"R1": {"kind": "journal"}}}, "mapping.movements.R1.kind", "deal, transfer"),
        (
            {"movements": {"R1": {"walletable": "現金"}}},
            "mapping.movements.R1.walletable",
            "other than the cash",
        ),
        (
            {"movements": {"R1": {"account": "現金"}}},
            "mapping.movements.R1.account",
            "cash account",
        ),
        ({"movement_defaults": {"BOTH": {}}}, "mapping.movement_defaults.BOTH", "IN, OUT"),
        ({"tags": "POS"}, "mapping.tags", "list"),
        ({"section": ""}, "mapping.section", "non-empty"),
    ],
)
def test_errors_name_key_and_expectation(table: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(table)
    assert info.value.key is not None and info.value.key.startswith(key)
    assert words in str(info.value)
